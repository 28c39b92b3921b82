"""A secrets check over every log line the tests wrote (.run/test-logs/*.log): no API key, webhook
secret or carrier token appears. Runs after every other test of the session (conftest orders it
last), so it reads the logs of the whole run; the fuzz tests seed the secrets it looks for."""

from __future__ import annotations

import re

import pytest

from tests.fuzz.conftest import CARRIER_TOKEN, WEBHOOK_SECRET
from tests.support.infra import ROOT
from tests.support.platform import SECRET as SIM_WEBHOOK_SECRET
from tests.support.platform import TOKEN as SIM_CARRIER_TOKEN

LOGS = ROOT / ".run" / "test-logs"
API_KEY = re.compile(rb"hk_[A-Za-z0-9]+_[A-Za-z0-9_\-]{12,}")


def test_no_log_line_holds_an_api_key_a_webhook_secret_or_a_carrier_token(api):
    known = [api["key"].encode(), WEBHOOK_SECRET.encode(), CARRIER_TOKEN.encode(),
             SIM_WEBHOOK_SECRET.encode(), SIM_CARRIER_TOKEN.encode()]
    logs = sorted(LOGS.glob("*.log"))
    if not logs:
        pytest.fail(f"no logs in {LOGS}: the processes of this run wrote none")
    found = []
    for path in logs:
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            hits = [s for s in known if s in line] + API_KEY.findall(line)
            if hits:
                found.append(f"{path.name}:{n}: {hits[0][:12]!r}...")
    assert not found, "secrets in logs:\n" + "\n".join(found[:20])
