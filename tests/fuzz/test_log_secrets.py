"""A secrets check over every log line the tests wrote (.run/test-logs/*.log): no API key,
console password, prize-card PIN, webhook secret or carrier token appears. Runs after every other
test of the session (conftest orders it last), so it reads the logs of the whole run. The fuzz
tests seed the carrier secrets it looks for; this module also drives a console password (a
sign-in, and a wrong one that contains it) and a card PIN (a card file uploaded) through the
running console before it reads."""

from __future__ import annotations

import re

import httpx
import pytest

from services.console.domain import users
from services.core.db import Database
from services.verifier.domain import admin
from services.verifier.domain import lottery_admin as la
from tests.fuzz.conftest import CARRIER_TOKEN, WEBHOOK_SECRET
from tests.support.infra import ROOT
from tests.support.platform import SECRET as SIM_WEBHOOK_SECRET
from tests.support.platform import TOKEN as SIM_CARRIER_TOKEN

LOGS = ROOT / ".run" / "test-logs"
API_KEY = re.compile(rb"hk_[A-Za-z0-9]+_[A-Za-z0-9_\-]{12,}")
CONSOLE_PASSWORD = "fuzz-console-pw-Tq83LmZa"
CARD_PIN = "fuzz-card-pin-90417735"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def console_secrets(api, fuzz_stack) -> list[str]:
    """A console owner signs in through the console process (once with a wrong password that
    contains the right one) and uploads a prize card whose PIN is CARD_PIN."""
    db = Database(fuzz_stack.database_url)
    with db.session() as s:
        users.create_user(s, email="owner@fuzzco.example", password=CONSOLE_PASSWORD, role="owner",
                          tenant_id="fuzzco")
        admin.create_brand(s, "fuzzco", "fz", "Fuzz")
        product = admin.create_product(s, "fuzzco", "fz", "fz-1", "Fuzz 1", points=1)
        lot = la.create_lottery(s, "fuzzco", product.brand_id, "Fuzz draw",
                                [la.TierIn("card", 0.5, 10)])
        lottery, tier = lot.id, la.lottery(s, "fuzzco", lot.id).tiers[0].tier.id
    db.dispose()
    with httpx.Client(base_url=api["console"].url, timeout=20) as c:
        def sign_in(password: str) -> httpx.Response:
            token = CSRF.search(c.get("/login").text).group(1)
            return c.post("/login", data={"email": "owner@fuzzco.example", "password": password,
                                          "csrf_token": token})

        assert sign_in(CONSOLE_PASSWORD + "-wrong").status_code == 401  # the form again, refused
        signed_in = sign_in(CONSOLE_PASSWORD)
        assert signed_in.status_code in (302, 303), signed_in.text[-300:]
        assert "/login" not in signed_in.headers["location"]
        token = CSRF.search(c.get(f"/lottery/{lottery}").text).group(1)
        up = c.post(f"/lottery/{lottery}/tiers/{tier}/cards", data={"csrf_token": token},
                    files={"file": ("cards.csv", f"card_number,password\nFZ1,{CARD_PIN}\n", "text/csv")},
                    follow_redirects=True)
        assert up.status_code == 200 and "1 card" in up.text, up.text[-500:]
    return [CONSOLE_PASSWORD, CARD_PIN]


def test_no_log_line_holds_an_api_key_a_password_a_card_pin_a_webhook_secret_or_a_carrier_token(
        api, console_secrets):
    known = [s.encode() for s in (api["key"], WEBHOOK_SECRET, CARRIER_TOKEN, SIM_WEBHOOK_SECRET,
                                  SIM_CARRIER_TOKEN, *console_secrets)]
    logs = sorted(LOGS.glob("*.log"))
    if not logs:
        pytest.fail(f"no logs in {LOGS}: the processes of this run wrote none")
    assert api["console"].log_path in logs  # the console that handled the password and PIN
    found = []
    for path in logs:
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            hits = [s for s in known if s in line] + API_KEY.findall(line)
            if hits:
                found.append(f"{path.name}:{n}: {hits[0][:12]!r}...")
    assert not found, "secrets in logs:\n" + "\n".join(found[:20])
