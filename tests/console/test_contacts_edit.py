"""Adding, editing and deleting a contact: inline errors naming the field, audit, roles, tenants."""

from sqlalchemy import select

from services.campaigns.domain import contacts
from services.core.db.console_models import AuditEntry
from services.core.db.models import Contact


def _contact(db, tenant="acme", msisdn="+8613800001111", **kw):
    with db.session() as s:
        rows, _, _ = contacts.upsert(s, tenant, [contacts.validate({"msisdn": msisdn, **kw})])
        return rows[0].id


def test_an_owner_edits_name_tags_and_a_custom_field_and_it_is_audited(browser, console_db):
    cid = _contact(console_db, name="Old", tags="a", city="Beijing")
    browser.sign_in("owner@acme.example")
    browser.get(f"/contacts/{cid}")
    resp, body = browser.post(f"/contacts/{cid}", {"name": "Li Lei", "tags": "vip，shanghai",
                                                   "language": "zh-CN", "timezone": "",
                                                   "field:city": "Shanghai"})
    assert resp.status == 200 and "The contact is saved." in body
    with console_db.session() as s:
        c = s.get(Contact, cid)
        assert (c.name, c.tags, c.fields) == ("Li Lei", ["shanghai", "vip"], {"city": "Shanghai"})
        e = s.scalar(select(AuditEntry).where(AuditEntry.object_type == "contact"))
        assert e.before["name"] == "Old" and e.after["name"] == "Li Lei" and e.actor == "owner@acme.example"


def test_a_bad_time_zone_is_shown_next_to_its_field_and_nothing_changes(browser, console_db):
    cid = _contact(console_db, name="Keep")
    browser.sign_in("owner@acme.example")
    browser.get(f"/contacts/{cid}")
    resp, body = browser.post(f"/contacts/{cid}", {"name": "Changed", "timezone": "Mars/Base"})
    assert resp.status == 422
    assert 'id="e-timezone"' in body and "Mars/Base" in body
    with console_db.session() as s:
        assert s.get(Contact, cid).name == "Keep"


def test_a_new_contact_with_a_number_already_there_is_refused_on_the_number_field(browser, console_db):
    _contact(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/new")
    resp, body = browser.post("/contacts/new", {"msisdn": "+86 138 0000 1111", "name": "Dup"})
    assert resp.status == 422 and 'id="e-msisdn"' in body and "already a contact" in body
    resp, body = browser.post("/contacts/new", {"msisdn": "12", "name": "Short"})
    assert resp.status == 422 and 'id="e-msisdn"' in body and "E.164" in body


def test_an_owner_adds_a_contact_and_lands_on_its_page(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/new")
    resp, body = browser.post("/contacts/new", {"msisdn": "+8613900002222", "name": "Han Meimei",
                                                "new_field_name": "member_level", "new_field_value": "gold"})
    assert resp.status == 200 and "The contact is added." in body and "gold" in body


def test_deleting_a_contact_removes_it_and_is_audited(browser, console_db):
    cid = _contact(console_db)
    browser.sign_in("owner@acme.example")
    browser.get(f"/contacts/{cid}")
    resp, body = browser.post(f"/contacts/{cid}/delete")
    assert resp.url.path == "/contacts" and "The contact is deleted." in body
    with console_db.session() as s:
        assert s.get(Contact, cid) is None
        assert s.scalar(select(AuditEntry.before).where(AuditEntry.action == "delete"))["msisdn"] == "+8613800001111"


def test_an_analyst_sees_a_contact_but_cannot_change_or_delete_it(browser, console_db):
    cid = _contact(console_db, name="Seen")
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/contacts/{cid}")
    assert resp.status == 200 and "Seen" in body and "Delete contact" not in body
    assert browser.post(f"/contacts/{cid}", {"name": "X"})[0].status == 403
    assert browser.post(f"/contacts/{cid}/delete")[0].status == 403
    with console_db.session() as s:
        assert s.get(Contact, cid).name == "Seen"


def test_another_tenants_contact_is_404_to_see_edit_or_delete(browser, console_db):
    cid = _contact(console_db, name="Acme's")
    browser.sign_in("owner@other.example")
    assert browser.get(f"/contacts/{cid}")[0].status == 404
    assert browser.post(f"/contacts/{cid}", {"name": "Stolen"})[0].status == 404
    assert browser.post(f"/contacts/{cid}/delete")[0].status == 404
    with console_db.session() as s:
        assert s.get(Contact, cid).name == "Acme's"


def test_a_change_without_the_form_token_is_refused(browser, console_db):
    cid = _contact(console_db, name="Safe")
    browser.sign_in("owner@acme.example")
    resp, _ = browser.post(f"/contacts/{cid}", {"name": "Forged"}, csrf=False)
    assert resp.status == 403
