"""One fault platform for the whole suite (see harness.py), and the table of results that the
suite writes into docs/reliability.md between its markers when it has run (table.py)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.topics import ensure_topics
from services.ledger.domain import create_gift
from services.verifier.demo import seed_scheme
from services.verifier.domain.admin import TierSpec
from tests.faults.harness import NUMBER, TENANT, FaultPlatform, start_fault_platform
from tests.faults.table import Row, write_table
from tests.support.infra import LocalPostgres, Stack
from tests.support.seed import seed_tenant

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "dev-only-change-me"  # the settings' default HERALD_SECRET_KEY: codes are hashed with it


@pytest.fixture(scope="session")
def fault_pg():
    """A PostgreSQL server of the suite's own: the PostgreSQL scenario restarts it."""
    if LocalPostgres.bindir() is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
    data = Path(tempfile.mkdtemp(prefix="herald-faults-pg-"))
    data.chmod(0o755)  # PostgreSQL runs as the postgres user when the tests run as root
    pg = LocalPostgres(data / "data")
    pg.start()
    yield pg
    pg.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def fault_platform(broker, fault_pg, tmp_path_factory) -> FaultPlatform:
    upgrade(fault_pg.url)
    stack = Stack(broker.bootstrap, fault_pg.url)
    ensure_topics(stack.settings(topic_partitions=3))
    key = seed_tenant(stack, TENANT, number=NUMBER)
    db = Database(fault_pg.url)
    with db.session() as s:
        scheme = seed_scheme(s, SECRET_KEY, TENANT, codes=400, points=10,
                             tiers=[TierSpec("a phone card", 0.2, 60)], cards_per_tier=60)
        create_gift(s, TENANT, 1, "gift card", 20)
    # the processes' logs, kept after the run (pytest's temporary folders are soon removed)
    logs = ROOT / ".run" / f"faults-logs-{broker.port}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    platform = start_fault_platform(stack, tmp_path_factory.mktemp("faults"), logs, key,
                                    list(scheme.codes), db)
    platform.pg = fault_pg
    yield platform
    platform.supervisor.stopping.set()
    platform.supervisor.join(10)
    stack.stop_all()
    db.dispose()


@pytest.fixture(scope="session")
def fault_table(request):
    """The rows of this run; written into the doc only when the whole suite ran (``make
    test-faults`` or ``make test``), not for one scenario picked by path or -k."""
    rows: list[Row] = []
    yield rows
    here = Path(__file__).parent
    paths = [Path(a.split("::")[0]).resolve() for a in request.config.args]
    whole = any(here == p or here.is_relative_to(p) for p in paths)
    if rows and whole and not request.config.option.keyword:
        write_table(rows, datetime.now(UTC))
