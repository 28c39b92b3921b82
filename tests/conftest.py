"""Session fixtures: the real Kafka broker (started by the test run itself), the databases
(a SQLite file, and PostgreSQL when HERALD_TEST_POSTGRES_URL is set, as in CI)."""

from __future__ import annotations

import os

import pytest

from tests.support.infra import Broker, Stack

TEST_KAFKA_PORT = int(os.environ.get("HERALD_TEST_KAFKA_PORT", "19092"))
POSTGRES_URL = os.environ.get("HERALD_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def broker():
    b = Broker(TEST_KAFKA_PORT)
    started = b.start()
    yield b
    if started and not os.environ.get("HERALD_TEST_KEEP_BROKER"):
        b.stop()


def database_params() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    if POSTGRES_URL or os.environ.get("CI"):
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


def _fresh_url(kind: str, tmp_path_factory) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'herald.db'}"
    if not POSTGRES_URL:
        pytest.fail("CI runs need HERALD_TEST_POSTGRES_URL (set by .ci/run)")
    from tests.support.infra import empty_postgres

    empty_postgres(POSTGRES_URL)  # a clean schema per use
    return POSTGRES_URL


@pytest.fixture(params=database_params())
def database_url(request, tmp_path_factory) -> str:
    """An empty database of each kind under test."""
    return _fresh_url(request.param, tmp_path_factory)


@pytest.fixture
def sqlite_db(tmp_path):
    """A migrated SQLite database of the test's own, disposed at the end."""
    from services.core.db import Database
    from services.core.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'herald.db'}"
    upgrade(url)
    d = Database(url)
    yield d
    d.dispose()


@pytest.fixture
def migrated_url(database_url) -> str:
    from services.core.db.migrate import upgrade

    upgrade(database_url)
    return database_url


@pytest.fixture
def stack(broker, tmp_path_factory):
    """A broker-backed stack on a migrated SQLite database, with a unique topic prefix and
    every catalogue topic created. Processes started on it are stopped at the end."""
    from services.core.db.migrate import upgrade
    from services.core.topics import ensure_topics

    url = os.environ.get("HERALD_TEST_STACK_DB") or _fresh_url("sqlite", tmp_path_factory)
    if url == POSTGRES_URL:
        url = _fresh_url("postgresql", tmp_path_factory)
    upgrade(url)
    s = Stack(broker.bootstrap, url)
    ensure_topics(s.settings(topic_partitions=3))
    yield s
    s.stop_all()
