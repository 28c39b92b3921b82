"""The running console and ingress for the fuzz tests: one stack per module (a migrated SQLite
database, the catalogue's topics), a tenant with a real API key and known secrets seeded so the
secrets check has something to look for."""

from __future__ import annotations

import json
import os

import pytest

from services.core.db.migrate import upgrade
from services.core.topics import ensure_topics
from tests.support.infra import Stack
from tests.support.seed import seed_tenant

# Known secrets seeded by the fuzz tests; tests/fuzz/test_log_secrets.py greps every log for them.
CARRIER_TOKEN = "fuzz-carrier-token-7Qm2xV"
WEBHOOK_SECRET = "fuzz-webhook-secret-Kp4wZr"


@pytest.fixture(scope="module")
def fuzz_stack(broker, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzzdb') / 'herald.db'}"
    upgrade(url)
    s = Stack(broker.bootstrap, url)
    ensure_topics(s.settings(topic_partitions=1))
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def carriers_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("carriers") / "carriers.json"
    path.write_text(json.dumps({"carriers": [{
        "name": "fuzz", "kind": "http", "submit_url": "http://127.0.0.1:9/submit",
        "api_token": CARRIER_TOKEN, "webhook_auth": "hmac", "webhook_secret": WEBHOOK_SECRET,
        "prefixes": ["+"], "priority": 10, "rate_per_second": 1000, "timeout_s": 3}]}))
    return path


@pytest.fixture(scope="module")
def api(fuzz_stack, carriers_file):
    """Console and ingress as processes, and a tenant's API key."""
    key = seed_tenant(fuzz_stack, "fuzzco", number="10690077")
    env = {"HERALD_CARRIERS_FILE": str(carriers_file),
           # the fuzzer sends hundreds of messages a second: the per-tenant limit is not under test
           "HERALD_API_RATE_PER_SECOND": os.environ.get("HERALD_FUZZ_API_RATE", "100000"),
           "HERALD_API_RATE_BURST": "100000",
           "HERALD_API_KEY_RATE_PER_SECOND": os.environ.get("HERALD_FUZZ_API_RATE", "100000"),
           "HERALD_API_KEY_RATE_BURST": "100000"}
    console = fuzz_stack.start("services.console", **env)
    ingress = fuzz_stack.start("services.ingress", **env)
    return {"key": key, "console": console, "ingress": ingress}


def pytest_collection_modifyitems(items):
    """The secrets check reads the logs of every other test of the run: it goes last."""
    last = [i for i in items if i.path.name == "test_log_secrets.py"]
    items[:] = [i for i in items if i.path.name != "test_log_secrets.py"] + last
