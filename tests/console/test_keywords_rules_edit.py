"""Editing and deleting routing rules: checked as a new rule is (without standing in its own
way), audited with before and after; another tenant's rule is 404 whatever the URL."""

from services.core import tenancy
from services.core.db.console_models import AuditEntry
from services.core.db.models import Keyword


def make(db, *args, **kw) -> int:
    with db.session() as s:
        return tenancy.add_keyword(s, "acme", *args, **kw).id


def test_an_owner_changes_a_rules_reply_and_priority_with_before_and_after_audited(browser, console_db):
    rid = make(console_db, "INFO", "reply", reply_text="old")
    browser.sign_in("owner@acme.example")
    resp, body = browser.get(f"/keywords/rules/{rid}")
    assert resp.status == 200 and 'value="INFO"' in body and ">old</textarea>" in body
    resp, body = browser.post(f"/keywords/rules/{rid}", {"keyword": "INFO", "action": "reply",
                                                         "reply_text": "new", "number": "*",
                                                         "priority": "50"})
    assert resp.url.path == "/keywords" and "is saved" in body
    with console_db.session() as s:
        k = s.get(Keyword, rid)
        assert (k.reply_text, k.priority) == ("new", 50)
        e = s.query(AuditEntry).filter_by(object_type="keyword", action="update").one()
        assert e.before["reply_text"] == "old" and e.after["reply_text"] == "new"


def test_a_pattern_edited_to_sit_behind_another_is_refused_naming_it(browser, console_db):
    codes = make(console_db, "", "codes", pattern="[A-Z0-9]{12}", priority=10)
    other = make(console_db, "", "inbox", pattern="[0-9]{6}", priority=20)
    browser.sign_in("owner@acme.example")
    browser.get(f"/keywords/rules/{other}")
    resp, body = browser.post(f"/keywords/rules/{other}", {"pattern": "[A-Z]{12}",
                                                           "action": "inbox", "number": "*",
                                                           "priority": "20"})
    assert resp.status == 422 and 'id="e-pattern"' in body and f"rule #{codes} " in body
    with console_db.session() as s:
        assert s.get(Keyword, other).pattern == "[0-9]{6}"


def test_an_owner_deletes_a_rule(browser, console_db):
    rid = make(console_db, "INFO", "inbox")
    browser.sign_in("owner@acme.example")
    browser.get("/keywords")
    resp, body = browser.post(f"/keywords/rules/{rid}/delete")
    assert resp.url.path == "/keywords" and "is deleted" in body
    with console_db.session() as s:
        assert s.get(Keyword, rid) is None
        assert s.query(AuditEntry).filter_by(object_type="keyword", action="delete").count() == 1


def test_an_analyst_can_view_a_rule_but_not_change_or_delete_it(browser, console_db):
    rid = make(console_db, "INFO", "inbox")
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/keywords/rules/{rid}")
    assert resp.status == 200 and "<fieldset class=\"plain\" disabled" in body and "Save rule" not in body
    resp, _ = browser.post(f"/keywords/rules/{rid}", {"keyword": "NEWS", "action": "inbox"})
    assert resp.status == 403
    resp, _ = browser.post(f"/keywords/rules/{rid}/delete")
    assert resp.status == 403
    with console_db.session() as s:
        assert s.get(Keyword, rid).keyword == "INFO"


def test_another_tenants_user_gets_404_for_acmes_rule_whatever_the_url(browser, console_db):
    rid = make(console_db, "INFO", "inbox")
    browser.sign_in("owner@other.example")
    browser.get("/keywords")
    for path in (f"/keywords/rules/{rid}", "/keywords/rules/999999", "/keywords/rules/x1"):
        resp, _ = browser.get(path)
        assert resp.status == 404, path
    resp, _ = browser.post(f"/keywords/rules/{rid}", {"keyword": "MINE", "action": "inbox"})
    assert resp.status == 404
    resp, _ = browser.post(f"/keywords/rules/{rid}/delete")
    assert resp.status == 404
    with console_db.session() as s:
        assert s.get(Keyword, rid).keyword == "INFO"
