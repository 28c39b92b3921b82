"""A campaign whose campaigns process is killed (SIGKILL) in the middle of expanding it is
resumed by a new process from the committed cursor, and every contact gets exactly one message:
counted at the carrier simulator by reference (the platform message id) and on sms.outbound by
message id. The chunk in flight at the kill may be produced twice; egress sends it once."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from services.campaigns.domain.events import campaign_request_id
from services.core.db import Database
from services.core.db.models import Contact
from services.core.messages import message_id_for
from tests.support.infra import read_topic, wait_until
from tests.support.platform import start_platform
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.e2e
CONTACTS = 200
RATE = 20  # messages per second: the campaign takes about ten seconds
CAMPAIGNS_ENV = {"HERALD_CAMPAIGNS_LEASE_S": "3", "HERALD_CAMPAIGNS_TICK_S": "0.2"}


def test_a_campaign_killed_mid_expansion_resumes_and_sends_exactly_once_to_everyone(stack, tmp_path):
    key = seed_tenant(stack, "crash", number="10690001")
    platform = start_platform(stack, tmp_path)
    first = stack.start("services.campaigns", **CAMPAIGNS_ENV)
    api = platform.admin(key)
    rows = "\n".join(f"+86135{i:08d},Member {i}" for i in range(CONTACTS))
    r = api.post("/v1/contacts/import", params={"list": "members"}, content=f"msisdn,name\n{rows}\n".encode())
    assert r.json()["created"] == CONTACTS, r.text
    assert api.put("/v1/settings", json={"rate_per_second": RATE}).status_code == 200
    r = api.post("/v1/campaigns", json={"name": "members", "kind": "notification",
                                        "audience": {"list": "members"},
                                        "template": "Hello {name}, your card is ready."})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]

    def report() -> dict:
        # The admin API is the console's: it answers while campaigns processes come and go.
        return api.get(f"/v1/campaigns/{cid}/report", timeout=5).json()

    at_kill = wait_until(lambda: (rep := report()) and rep["queued"] >= 2 * RATE and rep,
                         60, 0.1, "the campaign under way")
    first.kill()
    assert at_kill["queued"] < CONTACTS and at_kill["status"] == "running", at_kill

    second = stack.start("services.campaigns", **CAMPAIGNS_ENV)
    last: list[dict] = []

    def completed() -> dict | None:
        last[:] = [report()]
        # "sent": handed to the carrier (delivered or not yet): what exactly-once is about.
        return last[0] if last[0]["status"] == "completed" and last[0]["sent"] == CONTACTS else None

    try:
        done = wait_until(completed, 120, 0.5, "the campaign completed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last report: {last}") from None
    assert second.alive(), "the second campaigns process died"
    assert (done["queued"], done["sent"], done["failed"], done["suppressed"]) == (CONTACTS, CONTACTS, 0, 0)

    db = Database(stack.database_url)
    with db.session() as s:
        ids = list(s.scalars(select(Contact.id).where(Contact.tenant_id == "crash")))
    db.dispose()
    expected = {message_id_for("crash", campaign_request_id(cid, i)) for i in ids}
    subs = platform.submissions()
    by_reference = Counter(x["reference"] for x in subs)
    assert set(by_reference) == expected and set(by_reference.values()) == {1}
    outbound = read_topic(stack.bootstrap, stack.topic("sms.outbound"),
                          until=lambda rs: {x["message_id"] for x in rs} >= expected, timeout=60)
    produced = Counter(x["message_id"] for x in outbound)
    assert set(produced) == expected
    # Only the chunk in flight at the kill can have been produced twice.
    repeated = sum(n - 1 for n in produced.values())
    print(f"killed at {at_kill['queued']} committed; {repeated} message(s) produced twice")
    assert repeated <= RATE
