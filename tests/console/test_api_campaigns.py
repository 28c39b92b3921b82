"""The campaigns admin API, now served by the console: it answers as before, a tenant sees only
its own objects (404 for another's), bad input changes nothing, and every change is audited
as the key that made it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.core import tenancy
from services.core.db.campaigns_models import Campaign
from services.core.db.console_models import AuditEntry
from services.core.db.models import Contact


@pytest.fixture
def api(browser, console_db):
    """call(method, path, tenant="acme", **kw) -> (status, json or text) with that tenant's key."""
    keys = {}
    with console_db.session() as s:
        for t in ("acme", "other"):
            tenancy.add_number(s, t, "1069000" + ("1" if t == "acme" else "2"))
            keys[t] = tenancy.issue_api_key(s, t, "test")

    def call(method: str, path: str, tenant: str = "acme", **kw):
        resp = browser._run(browser.client.request(
            method, path, headers={"Authorization": f"Bearer {keys[tenant]}"}, **kw))
        body = browser._run(resp.json()) if resp.content_type == "application/json" \
            else browser._run(resp.text())
        return resp.status, body
    call.keys = keys
    return call


def audit_rows(db, tenant: str = "acme") -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.tenant_id == tenant)
                              .order_by(AuditEntry.id)))


def test_a_contact_is_added_read_and_deleted_and_each_change_is_audited_as_the_key(api, console_db):
    prefix = api.keys["acme"].split("_")[1]
    status, body = api("POST", "/v1/contacts", json={"msisdn": "+8613800000001", "name": "Li Lei"})
    assert status == 201 and body["created"] == 1
    assert api("GET", "/v1/contacts/+8613800000001")[1]["name"] == "Li Lei"
    assert api("DELETE", "/v1/contacts/+8613800000001") == (200, {"deleted": "+8613800000001"})
    rows = audit_rows(console_db)
    assert [(r.action, r.object_type, r.actor) for r in rows] == [
        ("upsert", "contact", f"api-key:{prefix}"), ("delete", "contact", f"api-key:{prefix}")]
    assert rows[1].before["name"] == "Li Lei" and rows[1].after is None


def test_another_tenants_contact_and_campaign_are_not_found(api):
    api("POST", "/v1/contacts", json={"msisdn": "+8613800000001", "list": "x"})
    status, body = api("POST", "/v1/campaigns", json={
        "id": "bill", "name": "Bill", "kind": "notification", "audience": {"list": "x"},
        "template": "Hi", "schedule_at": "2099-01-01T00:00:00Z"})
    assert status == 201, body
    for method, path in [("GET", "/v1/contacts/+8613800000001"),
                         ("DELETE", "/v1/contacts/+8613800000001"),
                         ("GET", "/v1/campaigns/bill"), ("GET", "/v1/campaigns/bill/report"),
                         ("POST", "/v1/campaigns/bill/cancel")]:
        status, body = api(method, path, tenant="other")
        assert status == 404, (method, path, body)
        assert set(body) == {"error"}
    assert api("GET", "/v1/campaigns", tenant="other")[1] == {"campaigns": []}
    assert api("GET", "/v1/campaigns/bill")[1]["status"] == "scheduled"


def test_a_campaign_action_is_audited_with_the_status_before_and_after(api, console_db):
    api("POST", "/v1/contacts", json={"msisdn": "+8613800000001", "list": "x"})
    api("POST", "/v1/campaigns", json={"id": "bill", "name": "Bill", "kind": "notification",
                                       "audience": {"list": "x"}, "template": "Hi",
                                       "schedule_at": "2099-01-01T00:00:00Z"})
    assert api("POST", "/v1/campaigns/bill/pause")[1]["status"] == "paused"
    last = audit_rows(console_db)[-1]
    assert (last.action, last.object_id, last.before, last.after) == (
        "pause", "bill", {"status": "scheduled"}, {"status": "paused"})


def test_a_bad_campaign_is_refused_with_a_reason_and_nothing_is_stored_or_audited(api, console_db):
    before = len(audit_rows(console_db))
    status, body = api("POST", "/v1/campaigns", json={"name": "x", "kind": "fireworks"})
    assert status == 400 and "kind must be one of" in body["error"]
    with console_db.session() as s:
        assert s.scalar(select(Campaign.id)) is None
    assert len(audit_rows(console_db)) == before


def test_a_bad_setting_names_the_problem_and_changes_nothing(api, console_db):
    status, body = api("PUT", "/v1/settings", json={"timezone": "Mars/Base"})
    assert status == 400 and "Mars/Base" in body["error"]
    assert api("GET", "/v1/settings")[1]["timezone"] == "UTC"
    assert audit_rows(console_db) == []
    status, body = api("PUT", "/v1/settings", json={"timezone": "Asia/Shanghai"})
    assert status == 200 and body["timezone"] == "Asia/Shanghai"
    row = audit_rows(console_db)[-1]
    assert (row.before["timezone"], row.after["timezone"]) == ("UTC", "Asia/Shanghai")


def test_a_csv_import_reports_rejected_rows_and_is_audited_once(api, console_db):
    csv = "msisdn,name\n+8613800000001,Li Lei\n,No Number\n+8613800000002,Han Meimei\n"
    status, body = api("POST", "/v1/contacts/import?list=members", data=csv.encode())
    assert status == 200, body
    assert (body["created"], body["rejected"]) == (2, 1)
    assert body["rejected_rows"][0]["line"] == 3
    (row,) = [r for r in audit_rows(console_db) if r.action == "import"]
    assert row.after["created"] == 2 and row.after["list"] == "members"


def test_an_atomic_import_with_a_bad_row_imports_nothing_and_audits_nothing(api, console_db):
    csv = "msisdn,name\n+8613800000001,Li Lei\n,No Number\n"
    status, body = api("POST", "/v1/contacts/import?atomic=1", data=csv.encode())
    assert status == 422 and body["written"] is False and "nothing was imported" in body["error"]
    with console_db.session() as s:
        assert s.scalar(select(Contact.id).where(Contact.tenant_id == "acme")) is None
    assert audit_rows(console_db) == []


def test_contacts_page_by_keyset_and_a_bad_cursor_names_the_parameter(api):
    api("POST", "/v1/contacts", json={"contacts": [{"msisdn": f"+861380000000{i}"} for i in range(5)]})
    first = api("GET", "/v1/contacts?limit=3")[1]
    assert len(first["contacts"]) == 3 and first["next_after"]
    rest = api("GET", f"/v1/contacts?limit=3&after={first['next_after']}")[1]
    assert len(rest["contacts"]) == 2 and rest["next_after"] is None
    assert api("GET", "/v1/contacts?after=x") == (400, {"error": "after must be a whole number",
                                                        "field": "after"})


def test_a_step_a_finished_campaign_cannot_take_is_a_409_with_the_reason_and_changes_nothing(api, console_db):
    api("POST", "/v1/contacts", json={"msisdn": "+8613800000001", "list": "x"})
    for cid, status in (("done", "completed"), ("gone", "cancelled")):
        api("POST", "/v1/campaigns", json={"id": cid, "name": cid, "kind": "notification",
                                           "audience": {"list": "x"}, "template": "Hi",
                                           "schedule_at": "2099-01-01T00:00:00Z"})
        with console_db.session() as s:
            s.get(Campaign, cid).status = status
        before = len(audit_rows(console_db))
        for step in ("pause", "resume", "cancel", "start"):
            code, body = api("POST", f"/v1/campaigns/{cid}/{step}")
            assert code == 409 and status in body["error"], (cid, step, body)
        assert api("GET", f"/v1/campaigns/{cid}")[1]["status"] == status
        assert len(audit_rows(console_db)) == before
