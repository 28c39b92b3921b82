"""A campaign's page: its steps (start, pause, resume, cancel) by state, live progress, audit,
roles and other tenants."""

from services.core.db.campaigns_models import Campaign, CampaignRecipient
from services.core.db.console_models import AuditEntry
from services.core.db.models import Message

from .campaign_fixtures import make


def _status(db, cid):
    with db.session() as s:
        return s.get(Campaign, cid).status


def test_a_draft_offers_start_and_starting_it_is_audited(browser, console_db):
    cid = make(console_db, start=False)
    browser.sign_in("owner@acme.example")
    _, body = browser.get(f"/campaigns/{cid}")
    assert f"/campaigns/{cid}/actions/start" in body and "/actions/pause" not in body
    resp, body = browser.post(f"/campaigns/{cid}/actions/start")
    assert resp.status == 200 and "The campaign is started." in body
    assert _status(console_db, cid) == "scheduled"
    with console_db.session() as s:
        e = s.query(AuditEntry).filter_by(action="start", object_id=cid).one()
        assert e.before == {"status": "draft"} and e.after == {"status": "scheduled"}


def test_pause_resume_and_cancel_follow_the_campaigns_state(browser, console_db):
    cid = make(console_db)
    browser.sign_in("owner@acme.example")
    _, body = browser.get(f"/campaigns/{cid}")
    assert "/actions/pause" in body and "/actions/resume" not in body
    browser.post(f"/campaigns/{cid}/actions/pause")
    assert _status(console_db, cid) == "paused"
    _, body = browser.get(f"/campaigns/{cid}")
    assert "/actions/resume" in body and "/actions/pause" not in body
    browser.post(f"/campaigns/{cid}/actions/resume")
    assert _status(console_db, cid) == "scheduled"
    browser.post(f"/campaigns/{cid}/actions/cancel")
    assert _status(console_db, cid) == "cancelled"
    _, body = browser.get(f"/campaigns/{cid}")
    assert "/actions/" not in body


def test_a_step_the_state_does_not_allow_is_refused_with_the_reason(browser, console_db):
    cid = make(console_db)
    browser.sign_in("owner@acme.example")
    browser.get(f"/campaigns/{cid}")
    resp, body = browser.post(f"/campaigns/{cid}/actions/resume")
    assert "This step is not possible now" in body and "not paused" in body
    assert _status(console_db, cid) == "scheduled"


def test_the_progress_counts_come_from_the_campaign_report(browser, console_db):
    cid = make(console_db)
    with console_db.session() as s:
        for i, status in enumerate(["delivered", "delivered", "failed", "sent"]):
            mid = f"m{i}"
            s.add(Message(id=mid, tenant_id="acme", request_id=f"r{i}", recipient=f"+1555000000{i}",
                          text="Hello", source="campaign", status=status, carrier_message_id=f"k{i}"))
            s.add(CampaignRecipient(campaign_id=cid, member_id=i + 1, msisdn=f"+1555000000{i}",
                                    state="queued", message_id=mid))
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/campaigns/{cid}/progress")
    assert resp.status == 200
    assert 'aria-valuenow="75"' in body  # 3 of 4 queued messages have a final status
    import re
    figures = dict(re.findall(r'stat-label">([^<]+)</div><div class="stat-value">([^<]+)<', body))
    assert figures["Queued"] == "4" and figures["Delivered"] == "2" and figures["Failed"] == "1"
    assert figures["Sent"] == "4"
    _, page = browser.get(f"/campaigns/{cid}")
    assert f'hx-get="/campaigns/{cid}/progress" hx-trigger="every 3s"' in page


def test_an_analyst_sees_no_step_and_cannot_post_one(browser, console_db):
    cid = make(console_db)
    browser.sign_in("analyst@acme.example")
    _, body = browser.get(f"/campaigns/{cid}")
    assert "/actions/" not in body
    resp, _ = browser.post(f"/campaigns/{cid}/actions/pause")
    assert resp.status == 403
    assert _status(console_db, cid) == "scheduled"


def test_another_tenants_campaign_is_404_whatever_the_url(browser, console_db):
    cid = make(console_db, tenant="other")
    browser.sign_in("owner@acme.example")
    for path in (f"/campaigns/{cid}", f"/campaigns/{cid}/progress", f"/campaigns/{cid}/results",
                 f"/campaigns/{cid}/results.csv"):
        resp, _ = browser.get(path)
        assert resp.status == 404, path
    browser.get("/campaigns")
    for step in ("pause", "cancel"):
        resp, _ = browser.post(f"/campaigns/{cid}/actions/{step}")
        assert resp.status == 404
    assert _status(console_db, cid) == "scheduled"


def test_the_progress_partial_also_updates_the_status_badge_in_the_header(browser, console_db):
    from services.core.db.campaigns_models import Campaign

    with console_db.session() as s:
        s.add(Campaign(id="c-badge", tenant_id="acme", name="Badge", kind="notification",
                       status="completed", config={}, audience_kind="all"))
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/campaigns/c-badge/progress")
    assert resp.status == 200
    assert 'id="campaign-status"' in body and 'hx-swap-oob="true"' in body and "completed" in body
    resp, _ = browser.get("/campaigns/c-badge")
    assert resp.status == 200


def _set_status(db, cid, status):
    with db.session() as s:
        s.get(Campaign, cid).status = status


def test_the_steps_offered_are_exactly_those_the_campaigns_domain_accepts_in_each_state(console_db):
    from services.campaigns.domain import campaigns
    from services.campaigns.domain.campaigns import CampaignError
    from services.console.domain import campaign_pages

    mismatches = []
    for status in campaign_pages.STATUSES:
        for step in ("start", "pause", "resume", "cancel"):
            cid = make(console_db, start=False)
            _set_status(console_db, cid, status)
            try:
                with console_db.session() as s:
                    campaigns.act(s, "acme", cid, step)
                accepted = True
            except CampaignError as exc:
                assert exc.status == 409, (status, step, exc.reason)
                accepted = False
            if accepted != (step in campaign_pages.allowed_steps(status)):
                mismatches.append((status, step, accepted))
    assert mismatches == []


def test_the_progress_poll_swaps_the_steps_so_a_completed_campaign_offers_none(browser, console_db):
    cid = make(console_db)
    browser.sign_in("owner@acme.example")
    _, body = browser.get(f"/campaigns/{cid}/progress")
    assert '<div id="campaign-steps" class="steps" hx-swap-oob="true">' in body
    assert f"/campaigns/{cid}/actions/pause" in body and f"/campaigns/{cid}/actions/cancel" in body
    for status in ("completed", "cancelled"):
        _set_status(console_db, cid, status)
        _, body = browser.get(f"/campaigns/{cid}/progress")
        assert '<div id="campaign-steps" class="steps" hx-swap-oob="true">' in body, status
        assert "/actions/" not in body and "Cancel campaign" not in body, status
        _, page = browser.get(f"/campaigns/{cid}")
        assert 'id="campaign-steps"' in page and "/actions/" not in page, status


def test_a_completed_campaign_refuses_a_step_posted_anyway_and_stays_completed(browser, console_db):
    cid = make(console_db)
    _set_status(console_db, cid, "completed")
    browser.sign_in("owner@acme.example")
    browser.get(f"/campaigns/{cid}")
    for step in ("pause", "cancel"):
        resp, body = browser.post(f"/campaigns/{cid}/actions/{step}")
        assert "This step is not possible now" in body and "completed" in body, step
        assert _status(console_db, cid) == "completed"
    with console_db.session() as s:
        assert s.query(AuditEntry).filter_by(object_id=cid).count() == 0
