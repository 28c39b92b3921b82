"""Engine and session handling for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Prepared statements each SQLite connection keeps (Python's default: 128). A batch's
# `IN (?, ?, …)` lists and multi-row statements have one SQL text per batch size, and a cached
# statement keeps its compiled program and its last bound values: at 128, egress's connections
# held about 30 MB of them in a campaign fan-out (docs/performance.md, egress's memory). A batch
# cycle runs about a dozen distinct statements, so 32 still keeps the ones reused.
SQLITE_CACHED_STATEMENTS = 32
SQLITE_CHECKPOINT_PAGES = 10_000  # WAL pages between automatic checkpoints (SQLite's default: 1,000)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the API) and writers (processors in other processes) work together.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    # A checkpoint copies every page written since the last one back into the database file. At
    # SQLite's default (1,000 pages, ~4 MB of WAL) egress checkpointed every few batches and
    # copied the same hot index pages each time; at 10,000 they are copied a tenth as often
    # (docs/performance.md, part 8).
    cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
    cur.close()


def make_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(u.database)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10,
                                                   "cached_statements": SQLITE_CACHED_STATEMENTS})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if u.get_backend_name() == "postgresql" and u.drivername == "postgresql":
        url = str(u.set(drivername="postgresql+psycopg"))
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.sessions) as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def session_scope(factory: sessionmaker) -> Iterator[Session]:
    """A transaction: committed if the block ends normally, rolled back if it raises."""
    s = factory()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()
