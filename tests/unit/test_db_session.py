"""The SQLite engine's connections: how much they keep between statements, and how they write."""

from __future__ import annotations

from sqlalchemy import event, text

from services.core.db.session import SQLITE_CACHED_STATEMENTS, SQLITE_CHECKPOINT_PAGES, make_engine


def test_sqlite_connections_keep_a_small_cache_of_prepared_statements(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'herald.db'}")
    asked: dict = {}

    @event.listens_for(engine, "do_connect")
    def _seen(_dialect, _rec, _cargs, cparams):
        asked.update(cparams)

    with engine.connect() as conn:
        # One SQL text per list length, as a batch's IN lists make them: all still run.
        for n in range(1, 2 * SQLITE_CACHED_STATEMENTS):
            values = ", ".join(str(i) for i in range(n))
            assert conn.execute(text(f"SELECT count(*) FROM (VALUES ({values}))")).scalar() == 1
    engine.dispose()
    assert asked["cached_statements"] == SQLITE_CACHED_STATEMENTS < 128


def test_sqlite_connections_write_ahead_and_checkpoint_every_10000_pages_not_every_1000(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'herald.db'}")
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    engine.dispose()
    assert (mode, pages, sync) == ("wal", SQLITE_CHECKPOINT_PAGES, 1)  # 1: NORMAL
    assert SQLITE_CHECKPOINT_PAGES == 10_000
