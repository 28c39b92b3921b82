"""The tenant's sending rules: quiet hours, frequency cap, speed and time zone."""

from services.core.db.campaigns_models import CampaignSettings
from services.core.db.console_models import AuditEntry


def test_an_owner_sets_quiet_hours_and_a_cap_and_the_change_is_audited(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/rules")
    resp, body = browser.post("/campaigns/rules", {"quiet_start": "21:00", "quiet_end": "08:00",
                                                   "frequency_cap": "3", "frequency_period": "week",
                                                   "rate_per_second": "20", "timezone": "Asia/Shanghai"})
    assert resp.status == 200 and "The sending rules are saved" in body
    with console_db.session() as s:
        row = s.get(CampaignSettings, "acme")
        assert (row.quiet_start, row.quiet_end, row.frequency_cap, row.timezone) == \
            ("21:00", "08:00", 3, "Asia/Shanghai")
        e = s.query(AuditEntry).filter_by(object_type="campaign_settings").one()
        assert e.after["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    _, form = browser.get("/campaigns/new?kind=promotion")
    assert "Quiet hours 21:00–08:00" in form and "At most 3 marketing messages" in form


def test_a_bad_time_zone_and_bad_quiet_hours_are_shown_on_their_fields(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/rules")
    resp, body = browser.post("/campaigns/rules", {"timezone": "Mars/Base", "frequency_cap": "0"})
    assert resp.status == 422 and 'id="e-timezone"' in body
    resp, body = browser.post("/campaigns/rules", {"quiet_start": "25:00", "quiet_end": "08:00"})
    assert resp.status == 422 and 'id="e-quiet_start"' in body
    with console_db.session() as s:
        assert s.get(CampaignSettings, "acme") is None


def test_an_analyst_sees_the_rules_but_cannot_save_them(browser, console_db):
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/campaigns/rules")
    assert resp.status == 200 and "Save rules" not in body
    resp, _ = browser.post("/campaigns/rules", {"frequency_cap": "1"})
    assert resp.status == 403


def test_one_tenants_rules_do_not_change_anothers(browser, console_db):
    browser.sign_in("owner@other.example")
    browser.get("/campaigns/rules")
    browser.post("/campaigns/rules", {"frequency_cap": "9", "timezone": "UTC"})
    with console_db.session() as s:
        assert s.get(CampaignSettings, "acme") is None
        assert s.get(CampaignSettings, "other").frequency_cap == 9
