"""Tenant isolation at every door: with two tenants, tenant B's credentials (API key, console
session, carrier secret of another carrier, webhook endpoint) are tried against tenant A's data.
Each attempt asserts the refusal and that nothing of A's leaked, and is written as a row of the
doors x attempts table in docs/reliability.md (tests/security/isolation_table.py). Attempts an
existing test already makes are listed there by name, not repeated. The Kafka door's attempts run
in test_kafka_tls.py (tenant users over SASL_SSL) and tests/integration/test_acl.py."""

from __future__ import annotations

import json
import re
import uuid
from types import SimpleNamespace

import httpx
import pytest

from services.bridge import webhooks
from services.core import tenancy
from services.core.carriers import sign
from services.core.db import Database
from services.core.db.campaigns_models import Campaign
from services.core.db.migrate import upgrade
from services.core.topics import ensure_topics
from tests.console.campaign_fixtures import make as make_campaign
from tests.security.isolation_table import Table
from tests.support.infra import Stack, read_topic
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.integration

TABLE = Table("`tests/security/test_tenant_isolation.py`")
SEND, CARRIER, ADMIN, PAGES, HOOKS = ("send API (ingress /v1)", "carrier webhooks",
                                      "admin API (console /v1)", "console pages", "tenant webhooks")
A_NUMBER, B_NUMBER = "10690501", "10690502"
A_TEXT = "acme private text 5521"
SECRETS = {"c1": "carrier-one-webhook-secret", "c2": "carrier-two-webhook-secret"}


@pytest.fixture(scope="module", autouse=True)
def table():
    """Rows of attempts other tests make; after the module, the table goes into the doc."""
    TABLE.covered(SEND, "look up A's message by its id", "404, nothing of A's in the body",
                  "tests/integration/test_ingress.py::test_another_tenants_message_does_not_exist")
    TABLE.covered(SEND, "a suspended tenant's key", "403 naming the suspension",
                  "tests/console/test_operator_suspend_api.py::test_a_suspended_tenant_s_key_is_refused_with_403_naming_the_suspension")
    TABLE.covered(CARRIER, "a Twilio-kind webhook signed with another account's token", "refused",
                  "tests/unit/test_carrier_twilio.py::test_a_signature_made_with_another_token_is_refused")
    TABLE.covered(ADMIN, "read, delete A's contact; read, report, cancel A's campaign",
                  "404 each, A's campaign still scheduled",
                  "tests/console/test_api_campaigns.py::test_another_tenants_contact_and_campaign_are_not_found")
    TABLE.covered(ADMIN, "list A's webhook deliveries", "an empty list",
                  "tests/console/test_api_webhooks.py::test_a_tenant_sees_its_own_deliveries_and_not_another_tenants")
    TABLE.covered(ADMIN, "replay A's failed delivery by its id", "nothing replayed",
                  "tests/console/test_api_webhooks.py::test_another_tenant_cannot_replay_a_delivery_by_its_id")
    TABLE.covered(ADMIN, "a console session cookie instead of a key", "401",
                  "tests/console/test_api_auth.py::test_a_signed_in_console_session_is_not_an_api_key")
    TABLE.covered(PAGES, "see, edit, delete A's contact by id in the URL", "404 each, contact unchanged",
                  "tests/console/test_contacts_edit.py::test_another_tenants_contact_is_404_to_see_edit_or_delete")
    TABLE.covered(PAGES, "A's message in the timeline URL", "404",
                  "tests/console/test_messages_timeline.py::test_another_tenants_message_is_not_found")
    TABLE.covered(PAGES, "send from A's number (send form)", "refused on the field",
                  "tests/console/test_send_now.py::test_another_tenants_number_cannot_be_the_sender")
    TABLE.covered(PAGES, "A's list as a campaign audience (form)", "refused",
                  "tests/console/test_campaigns_create.py::test_another_tenants_list_cannot_be_used_as_an_audience")
    TABLE.covered(PAGES, "see, rotate, disable A's webhook", "404, A's endpoint untouched",
                  "tests/console/test_integrations_webhook.py::test_another_tenant_never_sees_or_touches_acmes_webhook")
    TABLE.covered(PAGES, "A's conversation: open and answer", "404",
                  "tests/console/test_inbox_conversations.py::test_another_tenants_conversation_is_not_found_and_cannot_be_answered")
    TABLE.covered(PAGES, "the DLQ pages (a tenant user)", "404, nothing replayed",
                  "tests/console/test_operator_dlq.py::test_tenant_users_get_404_and_nothing_is_replayed")
    TABLE.covered(PAGES, "remove A's sender number", "refused, number stays A's",
                  "tests/console/test_keywords_numbers.py::test_another_tenants_owner_cannot_remove_acmes_number")
    TABLE.covered(HOOKS, "an ERP request on B's topic naming tenant A", "B's own DLQ with the reason",
                  "tests/e2e/test_erp_bridge.py::test_a_request_claiming_another_tenant_is_rejected_to_its_own_dlq_with_the_reason")
    TABLE.covered(HOOKS, "an ERP request (B's topic) sent from A's number", "B's DLQ: sender_not_owned",
                  "tests/unit/test_bridge_domain.py::test_invalid_requests_are_rejected_with_a_reason_that_names_the_problem")
    TABLE.covered(HOOKS, "reply by id to A's inbound text", "as unknown as no text at all",
                  "tests/unit/test_bridge_domain.py::test_a_reply_to_another_tenants_inbound_looks_like_an_unknown_one")
    yield TABLE
    TABLE.write()


# -- the send API and carrier webhooks: ingress as a process on the real broker ------------------
@pytest.fixture(scope="module")
def ingress(broker, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('isolation') / 'herald.db'}"
    upgrade(url)
    stack = Stack(broker.bootstrap, url)
    ensure_topics(stack.settings(topic_partitions=1))
    a_key = seed_tenant(stack, "acme", number=A_NUMBER)
    b_key = seed_tenant(stack, "beta", number=B_NUMBER)
    carriers = tmp_path_factory.mktemp("carriers") / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [
        {"name": name, "kind": "http", "submit_url": "http://127.0.0.1:9/submit", "api_token": f"{name}-token",
         "webhook_auth": "hmac", "webhook_secret": secret, "prefixes": ["+"], "priority": 10,
         "rate_per_second": 100, "timeout_s": 3} for name, secret in SECRETS.items()]}))
    proc = stack.start("services.ingress", HERALD_CARRIERS_FILE=str(carriers))
    yield SimpleNamespace(stack=stack, proc=proc, a_key=a_key, b_key=b_key)
    stack.stop_all()


def send(ing, key: str, path: str = "/v1/messages", **body) -> httpx.Response:
    return httpx.post(f"{ing.proc.url}{path}", json=body, timeout=10, headers={"Authorization": f"Bearer {key}"})


def lookup(ing, key: str, message_id: str) -> httpx.Response:
    return httpx.get(f"{ing.proc.url}/v1/messages/{message_id}", timeout=10,
                     headers={"Authorization": f"Bearer {key}"})


def test_tenant_b_cannot_send_as_tenant_a_or_take_over_its_requests(ingress):
    ing = ingress
    r = send(ing, ing.a_key, to="+8613800000001", text=A_TEXT, request_id="order-1", **{"from": A_NUMBER})
    assert r.status_code == 202, r.text
    a_id = r.json()["message_id"]

    def from_a_number() -> str:
        r = send(ing, ing.b_key, to="+8613800000002", text="as acme", **{"from": A_NUMBER})
        assert r.status_code == 400 and "'from'" in r.json()["error"], r.text
        return f"{r.status_code}: {r.json()['error']}"

    TABLE.attempt(SEND, "send from A's number", "400 naming the sender, nothing accepted", from_a_number)

    def batch_from_a_number() -> str:
        r = send(ing, ing.b_key, "/v1/messages/batch", messages=[
            {"to": "+8613800000003", "text": "as acme", "from": A_NUMBER},
            {"to": "+8613800000004", "text": "as beta", "from": B_NUMBER}])
        res = r.json()
        assert r.status_code == 202 and res["accepted"] == 1 and res["rejected"] == 1, r.text
        assert "'from'" in res["results"][0]["error"]
        return "the item from A's number rejected alone, naming the sender"

    TABLE.attempt(SEND, "a batch item from A's number", "that item rejected, the rest accepted",
                  batch_from_a_number)

    def reuse_request_id() -> str:
        r = send(ing, ing.b_key, to="+8613800000005", text="beta's own", request_id="order-1")
        assert r.status_code == 202 and r.json()["duplicate"] is False, r.text
        assert r.json()["message_id"] != a_id
        mine = lookup(ing, ing.a_key, a_id).json()
        assert mine["to"] == "+8613800000001" and lookup(ing, ing.b_key, a_id).status_code == 404
        return "202, a message of B's own; A's message unchanged"

    TABLE.attempt(SEND, "reuse A's request id (idempotency key)", "B's own new message, A's untouched",
                  reuse_request_id)

    def forged_key() -> str:
        a_prefix = ing.a_key.split("_")[1]
        b_secret = ing.b_key.split("_", 2)[2]
        r = lookup(ing, f"hk_{a_prefix}_{b_secret}", a_id)
        assert r.status_code == 401 and A_TEXT not in r.text, r.text
        return "401 invalid API key"

    TABLE.attempt(SEND, "A's key prefix with B's key secret", "401", forged_key)


def test_a_carrier_webhook_signed_with_another_carriers_secret_is_refused_and_publishes_nothing(ingress):
    ing, topic = ingress, ingress.stack.topic("sms.inbound")
    sender = f"+86139{uuid.uuid4().int % 10**8:08d}"

    def mo(carrier: str, secret: str, cmid: str) -> httpx.Response:
        raw = json.dumps({"id": cmid, "from": sender, "to": A_NUMBER, "text": "hello"}).encode()
        return httpx.post(f"{ing.proc.url}/carriers/{carrier}/mo", content=raw, timeout=10,
                          headers={"X-Herald-Signature": sign(secret, raw), "Content-Type": "application/json"})

    def forged_mo() -> str:
        assert mo("c1", SECRETS["c2"], "forged-1").status_code == 401
        # A genuine MO from the same number after it (same key, same partition, so in order):
        # once it is on the topic, the forged one would be before it if it had been published.
        assert mo("c1", SECRETS["c1"], "genuine-1").status_code == 200
        got = read_topic(ing.stack.bootstrap, topic,
                         until=lambda rs: any(e["carrier_message_id"] == "genuine-1" for e in rs))
        assert not [e for e in got if e["carrier_message_id"] == "forged-1"]
        return "401; nothing on sms.inbound"

    TABLE.attempt(CARRIER, "an MO to carrier c1 signed with carrier c2's secret", "401, nothing published",
                  forged_mo)

    def forged_dlr() -> str:
        raw = json.dumps({"carrier_message_id": "x-1", "reference": "m-forged", "status": "DELIVRD"}).encode()
        r = httpx.post(f"{ing.proc.url}/carriers/c1/dlr", content=raw, timeout=10,
                       headers={"X-Herald-Signature": sign(SECRETS["c2"], raw), "Content-Type": "application/json"})
        assert r.status_code == 401, r.text
        return "401"

    TABLE.attempt(CARRIER, "a DLR to carrier c1 signed with carrier c2's secret", "401", forged_dlr)

    def unsigned() -> str:
        raw = json.dumps({"id": "nosig-1", "from": sender, "to": A_NUMBER, "text": "x"}).encode()
        r = httpx.post(f"{ing.proc.url}/carriers/c1/mo", content=raw, timeout=10,
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 401, r.text
        return "401"

    TABLE.attempt(CARRIER, "an MO without a signature", "401", unsigned)


# -- the admin API and console pages: the console in process, over SQLite -----------------------
def api(client, key: str, method: str, path: str, **kw):
    resp = client._run(client.client.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw))
    return resp.status, client._run(resp.text())


def test_tenant_b_lists_none_of_tenant_as_contacts_lists_or_keys(browser, console, console_db):
    with console_db.session() as s:
        a_key, b_key = tenancy.issue_api_key(s, "acme", "erp"), tenancy.issue_api_key(s, "other", "erp")
    a_prefix = a_key.split("_")[1]
    assert api(browser, a_key, "POST", "/v1/contacts", json={"msisdn": "+8613800000009", "name": "Ada Acme",
                                                           "list": "acme-vip"})[0] == 201

    def contacts() -> str:
        status, body = api(browser, b_key, "GET", "/v1/contacts")
        assert status == 200 and "+8613800000009" not in body and "Ada Acme" not in body, body
        return "200, none of A's contacts"

    TABLE.attempt(ADMIN, "list contacts", "only B's own", contacts)

    def lists() -> str:
        status, body = api(browser, b_key, "GET", "/v1/lists")
        assert status == 200 and "acme-vip" not in body, body
        return "200, none of A's lists"

    TABLE.attempt(ADMIN, "list contact lists", "only B's own", lists)

    def forged_key() -> str:
        status, body = api(browser, f"hk_{a_prefix}_{b_key.split('_', 2)[2]}", "GET", "/v1/contacts")
        assert status == 401 and "Ada Acme" not in body
        return "401 invalid API key"

    TABLE.attempt(ADMIN, "A's key prefix with B's key secret", "401", forged_key)

    browser.sign_in("owner@other.example")

    def keys_page() -> str:
        resp, body = browser.get("/integrations")
        assert resp.status == 200 and a_prefix not in body
        return "200, A's key prefixes absent"

    TABLE.attempt(PAGES, "the API keys page", "only B's keys", keys_page)

    def revoke_a_key() -> str:
        resp, _ = browser.post(f"/integrations/keys/{a_prefix}/revoke")
        assert resp.status == 404
        with console_db.session() as s:
            assert tenancy.identify(s, a_key) is not None
        return "404; A's key still valid"

    TABLE.attempt(PAGES, "revoke A's key by its prefix in the URL", "404, the key still works", revoke_a_key)


def test_tenant_b_cannot_see_or_steer_tenant_as_campaign_from_its_pages(browser, console_db):
    cid = make_campaign(console_db, "acme", name="Acme secret launch")
    with console_db.session() as s:
        before = s.get(Campaign, cid).status
    browser.sign_in("owner@other.example")

    def pages() -> str:
        for path in ("", "/progress", "/results", "/results.csv"):
            resp, body = browser.get(f"/campaigns/{cid}{path}")
            assert resp.status == 404 and "Acme secret launch" not in body, path
        return "404 each, the name never shown"

    TABLE.attempt(PAGES, "A's campaign id in the URL (page, progress, results, CSV)", "404 each", pages)

    def steer() -> str:
        codes = [browser.post(f"/campaigns/{cid}/actions/{action}")[0].status for action in ("pause", "cancel")]
        assert codes == [404, 404]
        with console_db.session() as s:
            assert s.get(Campaign, cid).status == before
        return f"404, 404; status still {before}"

    TABLE.attempt(PAGES, "pause or cancel A's campaign (form post with B's CSRF token)",
                  "404, A's campaign unchanged", steer)


# -- tenant webhooks: what the bridge queues for one tenant's endpoint ---------------------------
def test_a_tenants_webhook_carries_only_its_own_events_signed_with_its_own_secret(console, console_db):
    with console_db.session() as s:
        secrets = {t: webhooks.set_endpoint(s, console.settings, t, f"https://erp.{t}.example/hook")
                   for t in ("acme", "other")}
    with console_db.session() as s:
        for n in range(3):
            for t in ("acme", "other"):
                ep = webhooks.active_endpoint(s, t)
                webhooks.enqueue(s, ep, {"event_id": f"{t}-{n}", "event_type": "sms.status", "tenant_id": t,
                                         "message_id": f"{t}-m{n}", "to": f"+861380000{n:04d}",
                                         "status": "delivered"}, 60)
    db = Database(console_db.url)
    with db.session() as s:
        attempts = webhooks.claim_due(s, console.settings.secret_key, 100, 30)
    db.dispose()

    def only_its_own() -> str:
        to_b = [a for a in attempts if a.url == "https://erp.other.example/hook"]
        assert len(to_b) == 3 and len(attempts) == 6
        for a in to_b:
            assert json.loads(a.body)["tenant_id"] == "other" and not re.search(rb"acme", a.body)
            h = webhooks.headers_for(a.secret, a.body, event_type=a.event_type, event_id=a.event_id,
                                     delivery_id=a.delivery_id, attempt=a.attempt)
            assert webhooks.verify(secrets["other"], a.body, h)
            assert not webhooks.verify(secrets["acme"], a.body, h)
        return "3 of B's events, 0 of A's; signed with B's secret only"

    TABLE.attempt(HOOKS, "deliveries due to B's endpoint while both tenants have traffic",
                  "B's events only, verifiable with B's secret and not A's", only_its_own)
