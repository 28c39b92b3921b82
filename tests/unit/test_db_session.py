"""The SQLite engine's connections: how much they keep between statements."""

from __future__ import annotations

from sqlalchemy import event, text

from services.core.db.session import SQLITE_CACHED_STATEMENTS, make_engine


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
