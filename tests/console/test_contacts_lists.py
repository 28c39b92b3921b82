"""Lists: create, add members by number, remove, delete; counts; roles and tenants."""

from sqlalchemy import select

from services.campaigns.domain import contacts
from services.core.db.campaigns_models import ContactList, ContactListMember
from services.core.db.console_models import AuditEntry


def _seed(db, tenant="acme"):
    with db.session() as s:
        rows, _, _ = contacts.upsert(s, tenant, [contacts.validate({"msisdn": m}) for m in
                                                 ("+8613800000001", "+8613800000002")])
        lst = contacts.get_or_create_list(s, tenant, "VIP")
        return lst.id, [r.id for r in rows]


def test_an_owner_creates_a_list_adds_contacts_by_number_and_sees_the_count(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/lists")
    resp, body = browser.post("/contacts/lists", {"name": "Fair 2026"})
    assert "The list is created." in body
    _seed(console_db)
    resp, body = browser.post(resp.url.path + "/members", {"msisdns": "+8613800000001, +86 138 0000 0002"})
    assert "2 contacts added." in body
    _, body = browser.get("/contacts/lists")
    assert "Fair 2026" in body and '<td class="num">2</td>' in body
    with console_db.session() as s:
        assert s.scalar(select(AuditEntry.after).where(AuditEntry.action == "add_members"))["added"] == 2


def test_an_unknown_number_is_named_on_the_field_and_nothing_is_added(browser, console_db):
    list_id, _ = _seed(console_db)
    browser.sign_in("owner@acme.example")
    browser.get(f"/contacts/lists/{list_id}")
    resp, body = browser.post(f"/contacts/lists/{list_id}/members", {"msisdns": "+8613800000001 +8613999999999"})
    assert resp.status == 422 and 'id="e-msisdns"' in body and "+8613999999999" in body
    with console_db.session() as s:
        assert s.scalars(select(ContactListMember)).all() == []


def test_a_duplicate_list_name_is_refused_on_the_name_field(browser, console_db):
    _seed(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/lists")
    resp, body = browser.post("/contacts/lists", {"name": "VIP"})
    assert resp.status == 422 and 'id="e-name"' in body


def test_removing_a_member_and_deleting_the_list_keep_the_contacts(browser, console_db):
    list_id, ids = _seed(console_db)
    with console_db.session() as s:
        contacts.add_members(s, list_id, ids)
    browser.sign_in("owner@acme.example")
    browser.get(f"/contacts/lists/{list_id}")
    _, body = browser.post(f"/contacts/lists/{list_id}/members/{ids[0]}/remove")
    assert "Removed from the list." in body
    _, body = browser.post(f"/contacts/lists/{list_id}/delete")
    assert "The list is deleted" in body
    with console_db.session() as s:
        assert s.get(ContactList, list_id) is None
        assert contacts.get_contact(s, "acme", ids[0]) is not None


def test_an_analyst_sees_lists_but_cannot_change_them(browser, console_db):
    list_id, ids = _seed(console_db)
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/contacts/lists/{list_id}")
    assert resp.status == 200 and "Delete list" not in body
    assert browser.post("/contacts/lists", {"name": "X"})[0].status == 403
    assert browser.post(f"/contacts/lists/{list_id}/members", {"msisdns": "+8613800000001"})[0].status == 403
    assert browser.post(f"/contacts/lists/{list_id}/delete")[0].status == 403


def test_another_tenants_list_is_404_whatever_the_url(browser, console_db):
    list_id, ids = _seed(console_db)
    browser.sign_in("owner@other.example")
    assert browser.get(f"/contacts/lists/{list_id}")[0].status == 404
    assert browser.post(f"/contacts/lists/{list_id}/members", {"msisdns": "+8613800000001"})[0].status == 404
    assert browser.post(f"/contacts/lists/{list_id}/members/{ids[0]}/remove")[0].status == 404
    assert browser.post(f"/contacts/lists/{list_id}/delete")[0].status == 404
    assert browser.post(f"/contacts/{ids[0]}/lists", {"list_id": list_id})[0].status == 404
    with console_db.session() as s:
        assert s.get(ContactList, list_id) is not None
