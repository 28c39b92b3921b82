"""Creating campaigns from the console: each kind's form, inline errors by field, roles,
the audit log, and the other tenant's view."""

from services.core.db.campaigns_models import Campaign, CampaignKeyword, SurveyQuestion
from services.core.db.console_models import AuditEntry


def _campaigns(db, tenant="acme"):
    with db.session() as s:
        return s.query(Campaign).filter_by(tenant_id=tenant).all()


def test_the_kind_chooser_lists_every_level_1_kind(browser):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/campaigns/new")
    assert resp.status == 200
    for kind in ("notification", "greeting", "promotion", "survey", "inquiry", "on_demand",
                 "subscription"):
        assert f"/campaigns/new?kind={kind}" in body


def test_an_owner_creates_a_notification_to_every_contact_and_it_is_audited(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=notification")
    resp, body = browser.post("/campaigns", {"kind": "notification", "name": "Bill reminder",
                                             "audience": "all", "template": "Hello {name|customer}",
                                             "start": "now"})
    assert resp.status == 200
    assert resp.url.path.startswith("/campaigns/c")
    assert "Bill reminder" in body and "The campaign is created" in body
    [c] = _campaigns(console_db)
    assert (c.kind, c.status, c.audience_kind, c.template) == ("notification", "scheduled", "all",
                                                              "Hello {name|customer}")
    with console_db.session() as s:
        entry = s.query(AuditEntry).filter_by(action="create", object_type="campaign").one()
        assert entry.object_id == c.id and entry.actor == "owner@acme.example"


def test_a_campaign_can_be_saved_as_a_draft_with_a_schedule_in_the_tenant_zone(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=promotion")
    resp, _ = browser.post("/campaigns", {"kind": "promotion", "name": "Spring sale",
                                          "audience": "all", "template": "20% off",
                                          "schedule_at": "2099-03-01T09:30", "start": "draft",
                                          "rate_per_second": "5"})
    assert resp.status == 200
    [c] = _campaigns(console_db)
    assert c.status == "draft"
    assert c.config["rate_per_second"] == 5
    assert c.scheduled_at.strftime("%Y-%m-%d %H:%M") == "2099-03-01 09:30"  # tenant zone is UTC


def test_a_missing_name_and_text_are_shown_on_their_fields_and_nothing_is_stored(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=notification")
    resp, body = browser.post("/campaigns", {"kind": "notification", "name": "",
                                             "audience": "all", "template": "Hi"})
    assert resp.status == 422
    assert 'id="e-name"' in body and "Give the campaign a name" in body
    resp, body = browser.post("/campaigns", {"kind": "notification", "name": "No text",
                                             "audience": "all", "template": ""})
    assert resp.status == 422
    assert 'id="e-template"' in body and "Write the message text." in body
    assert 'value="No text"' in body  # what the user typed is kept
    assert _campaigns(console_db) == []


def test_an_unknown_placeholder_is_refused_on_the_text_field(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=notification")
    resp, body = browser.post("/campaigns", {"kind": "notification", "name": "X", "audience": "all",
                                             "template": "Your bill {amount}"})
    assert resp.status == 422
    assert 'id="e-template"' in body and "amount" in body
    assert _campaigns(console_db) == []


def test_a_list_that_does_not_exist_is_refused_on_the_list_field(browser):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=notification")
    resp, body = browser.post("/campaigns", {"kind": "notification", "name": "X", "audience": "list",
                                             "audience_list": "nobody", "template": "Hi"})
    assert resp.status in (404, 422)
    assert 'id="e-audience_list"' in body


def test_a_schedule_in_the_past_is_refused_on_its_field(browser):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=notification")
    resp, body = browser.post("/campaigns", {"kind": "notification", "name": "X", "audience": "all",
                                             "template": "Hi", "schedule_at": "2001-01-01T09:00"})
    assert resp.status == 422
    assert 'id="e-schedule_at"' in body and "That time has passed" in body


def test_a_survey_with_branching_questions_is_stored_with_its_questions(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=survey")
    resp, _ = browser.post("/campaigns", {
        "kind": "survey", "name": "Visit", "audience": "none", "keyword": "VISIT",
        "q0_key": "q1", "q0_text": "How was it?", "q0_type": "choice",
        "q0_choices": "Great\nOK\nBad", "q0_branches": "Bad -> why",
        "q1_key": "n", "q1_text": "How many visits?", "q1_type": "number", "q1_min": "0",
        "q1_max": "60", "q1_next": "end",
        "q2_key": "why", "q2_text": "What went wrong?", "q2_type": "text"})
    assert resp.status == 200, _
    [c] = _campaigns(console_db)
    assert c.status == "active"
    with console_db.session() as s:
        qs = s.query(SurveyQuestion).filter_by(campaign_id=c.id).order_by(SurveyQuestion.position).all()
        assert [(q.key, q.kind) for q in qs] == [("q1", "choice"), ("n", "number"), ("why", "text")]
        assert qs[0].branches == {"Bad": "why"} and qs[1].max_value == 60 and qs[1].next_key == "end"
        assert s.query(CampaignKeyword).filter_by(campaign_id=c.id).one().keyword == "VISIT"


def test_a_branch_going_backwards_is_shown_on_its_question(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=survey")
    resp, body = browser.post("/campaigns", {
        "kind": "survey", "name": "Loop", "audience": "none", "keyword": "LOOP",
        "q0_key": "a", "q0_text": "First?", "q0_type": "text",
        "q1_key": "b", "q1_text": "Second?", "q1_type": "choice", "q1_choices": "Yes\nNo",
        "q1_branches": "No -> a"})
    assert resp.status == 422
    assert 'id="question-1"' in body and "branches only jump forward" in body
    assert _campaigns(console_db) == []


def test_a_reserved_keyword_is_refused_on_the_keyword_field(browser):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=on_demand")
    resp, body = browser.post("/campaigns", {"kind": "on_demand", "name": "X", "keyword": "STOP",
                                             "content": "prices"})
    assert resp.status == 422
    assert 'id="e-keyword"' in body and "reserved" in body


def test_the_survey_builder_adds_a_question_block(browser):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/campaigns/new/question?i=2")
    assert resp.status == 200
    assert 'name="q2_text"' in body and "/campaigns/new/question?i=3" in body


def test_an_analyst_cannot_open_the_form_nor_create(browser, console_db):
    browser.sign_in("analyst@acme.example")
    resp, _ = browser.get("/campaigns/new?kind=notification")
    assert resp.status == 403
    browser.get("/campaigns")
    resp, _ = browser.post("/campaigns", {"kind": "notification", "name": "X", "audience": "all",
                                          "template": "Hi"})
    assert resp.status == 403
    assert _campaigns(console_db) == []


def test_a_post_without_the_csrf_token_creates_nothing(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, _ = browser.post("/campaigns", {"kind": "notification", "name": "X", "audience": "all",
                                          "template": "Hi"}, csrf=False)
    assert resp.status == 403
    assert _campaigns(console_db) == []


def test_another_tenants_list_cannot_be_used_as_an_audience(browser, console_db):
    from services.campaigns.domain import contacts
    with console_db.session() as s:
        contacts.get_or_create_list(s, "other", "vip")
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/new?kind=notification")
    resp, body = browser.post("/campaigns", {"kind": "notification", "name": "X", "audience": "list",
                                             "audience_list": "vip", "template": "Hi"})
    assert resp.status in (404, 422)
    assert _campaigns(console_db, "acme") == []
