"""Creating routing rules from the console: a rule the router could never reach is refused on
the field at fault, naming the rule in its way; analysts cannot create."""

from services.core import tenancy
from services.core.db.console_models import AuditEntry
from services.core.db.models import Keyword


def rules(db, tenant="acme"):
    with db.session() as s:
        return [(k.keyword, k.pattern, k.action) for k in
                s.query(Keyword).filter_by(tenant_id=tenant).order_by(Keyword.id)]


def test_an_operator_role_creates_a_reply_rule_and_it_is_listed_and_audited(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/keywords/rules/new")
    resp, body = browser.post("/keywords/rules", {"keyword": "info", "action": "reply",
                                                  "reply_text": "Open 9-5", "number": "*",
                                                  "priority": "100"})
    assert resp.status == 200 and resp.url.path == "/keywords"
    assert "keyword INFO" in body and "is saved" in body and "Open 9-5" in body
    assert rules(console_db) == [("INFO", "", "reply")]
    with console_db.session() as s:
        e = s.query(AuditEntry).filter_by(object_type="keyword").one()
        assert e.action == "create" and e.after["keyword"] == "INFO"


def test_a_pattern_behind_an_earlier_catch_all_is_refused_on_the_pattern_naming_it(browser, console_db):
    with console_db.session() as s:
        first = tenancy.add_keyword(s, "acme", "", "inbox", pattern=".*", priority=10).id
    browser.sign_in("owner@acme.example")
    browser.get("/keywords/rules/new")
    resp, body = browser.post("/keywords/rules", {"pattern": "[A-Z0-9]{12}", "action": "codes",
                                                  "number": "*", "priority": "100"})
    assert resp.status == 422
    assert 'id="e-pattern"' in body and f"rule #{first} (pattern /.*/" in body
    assert "lower priority number" in body
    assert 'value="[A-Z0-9]{12}"' in body  # what was typed stays in the form
    assert len(rules(console_db)) == 1


def test_the_same_keyword_twice_is_refused_naming_the_first_rule(browser, console_db):
    with console_db.session() as s:
        first = tenancy.add_keyword(s, "acme", "INFO", "inbox").id
    browser.sign_in("owner@acme.example")
    browser.get("/keywords/rules/new")
    resp, body = browser.post("/keywords/rules", {"keyword": "Info", "action": "reply",
                                                  "reply_text": "x", "number": "*"})
    assert resp.status == 422 and 'id="e-keyword"' in body
    assert f"rule #{first} (keyword INFO" in body and "already matches the same texts" in body


def test_a_compliance_word_and_a_missing_reply_are_named_on_their_fields(browser):
    browser.sign_in("owner@acme.example")
    browser.get("/keywords/rules/new")
    resp, body = browser.post("/keywords/rules", {"keyword": "stop", "action": "inbox"})
    assert resp.status == 422 and 'id="e-keyword"' in body and "opt-out word" in body
    resp, body = browser.post("/keywords/rules", {"keyword": "HOURS", "action": "reply",
                                                  "reply_text": ""})
    assert resp.status == 422 and 'id="e-reply_text"' in body
    resp, body = browser.post("/keywords/rules", {"keyword": "HOURS", "action": "reply",
                                                  "reply_text": "x", "priority": "soon"})
    assert resp.status == 422 and 'id="e-priority"' in body


def test_a_refusal_reads_in_chinese_for_a_chinese_user(browser, console_db):
    with console_db.session() as s:
        tenancy.add_keyword(s, "acme", "", "inbox", pattern=".*", priority=10)
    browser.sign_in("owner@acme.example")
    browser.get("/")
    browser.post("/profile/language", {"locale": "zh_Hans", "next": "/keywords/rules/new"})
    resp, body = browser.post("/keywords/rules", {"pattern": "[0-9]+", "action": "inbox",
                                                  "priority": "100"})
    assert resp.status == 422 and "优先" in body and "新规则" in body


def test_an_analyst_cannot_create_a_rule(browser, console_db):
    browser.sign_in("analyst@acme.example")
    resp, _ = browser.get("/keywords/rules/new")
    assert resp.status == 403
    resp, _ = browser.post("/keywords/rules", {"keyword": "INFO", "action": "inbox"})
    assert resp.status == 403 and rules(console_db) == []


def test_a_rule_created_by_another_tenant_stays_in_that_tenant(browser, console_db):
    browser.sign_in("owner@other.example")
    browser.get("/keywords/rules/new")
    browser.post("/keywords/rules", {"keyword": "INFO", "action": "inbox", "number": "*"})
    assert rules(console_db, "other") == [("INFO", "", "inbox")] and rules(console_db) == []
