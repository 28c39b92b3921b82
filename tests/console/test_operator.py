"""Operator pages: only platform operators see them; they create and suspend tenants."""

import json
import re

from services.core.db.console_models import ConsoleUser
from services.core.db.models import Tenant


def test_a_tenant_user_gets_404_for_the_operator_pages(browser):
    browser.sign_in("owner@acme.example")
    resp, _ = browser.get("/operator")
    assert resp.status == 404


def test_a_platform_operator_gets_404_for_tenant_pages(browser):
    browser.sign_in("ops@herald.example")
    resp, _ = browser.get("/integrations")
    assert resp.status == 404
    resp, body = browser.get("/operator")
    assert resp.status == 200 and "acme" in body


def test_the_processes_and_their_restarts_are_shown_from_the_supervisor_state(browser, console, tmp_path):
    state = tmp_path / "stack.json"
    state.write_text(json.dumps({"updated_at": "2026-12-01T03:00:00Z", "processes": [
        {"name": "ledger", "pid": 12, "port": 8085, "state": "running", "restarts": 2,
         "last_exit_status": -9, "last_exit": "killed by SIGKILL", "since": "2026-12-01T02:59:00Z"}]}))
    console.settings.stack_state_file = str(state)
    browser.sign_in("ops@herald.example")
    _, body = browser.get("/operator/processes")
    assert "ledger" in body and "killed by SIGKILL" in body and ">2<" in body


def test_an_operator_creates_a_tenant_with_its_first_owner(browser, console_db, monkeypatch):
    made = []
    monkeypatch.setattr("services.console.views.operator.ensure_topics", lambda settings, extra: made.append(extra))
    browser.sign_in("ops@herald.example")
    browser.get("/operator")
    resp, body = browser.post("/operator/tenants", {"tenant_id": "brandx", "name": "Brand X",
                                                    "number": "10691234", "owner_email": "boss@brandx.example"})
    assert resp.status == 200
    assert re.search(r'id="temporary-password">([^<]+)<', body)
    assert made and any(t.name == "tenant.brandx.outbound" for t in made[0])
    with console_db.session() as s:
        assert s.get(Tenant, "brandx").name == "Brand X"
        assert s.query(ConsoleUser).filter_by(email="boss@brandx.example").one().role == "owner"


def test_a_taken_tenant_id_is_named_next_to_its_field(browser, monkeypatch):
    monkeypatch.setattr("services.console.views.operator.ensure_topics", lambda settings, extra: None)
    browser.sign_in("ops@herald.example")
    browser.get("/operator")
    resp, body = browser.post("/operator/tenants", {"tenant_id": "acme", "name": "Again",
                                                    "number": "", "owner_email": "a@b.example"})
    assert resp.status == 422 and "This tenant id is taken." in body


def test_a_suspended_tenant_s_users_are_signed_out(browser, browser_factory):
    acme = browser_factory()
    acme.sign_in("owner@acme.example")
    browser.sign_in("ops@herald.example")
    browser.get("/operator")
    browser.post("/operator/tenants/acme/suspend")
    resp, _ = acme.get("/")
    assert resp.url.path == "/login"
