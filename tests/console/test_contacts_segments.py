"""Segments: build with conditions, a live count, inline errors, save, delete; roles, tenants."""

from sqlalchemy import select

from services.campaigns.domain import contacts
from services.core.db.campaigns_models import Segment


def _seed(db, tenant="acme"):
    with db.session() as s:
        contacts.upsert(s, tenant, [
            contacts.validate({"msisdn": "+8613800000001", "tags": "vip", "city": "Shanghai", "age": "30"}),
            contacts.validate({"msisdn": "+8613800000002", "tags": "vip", "city": "Beijing", "age": "50"}),
            contacts.validate({"msisdn": "+8613800000003", "city": "Shanghai", "age": "20"})])


FORM = {"name": "VIP Shanghai", "match": "all", "kind_0": "tag", "field_0": "", "op_0": "eq",
        "value_0": "vip", "kind_1": "field", "field_1": "city", "op_1": "eq", "value_1": "shanghai"}


def test_the_live_count_follows_the_conditions_as_they_are_edited(browser, console_db):
    _seed(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/segments/new")
    _, body = browser.post("/contacts/segments/count", FORM)
    assert "<strong class=\"count\">1</strong>" in body
    _, body = browser.post("/contacts/segments/count", {**FORM, "match": "any"})
    assert "<strong class=\"count\">3</strong>" in body
    _, body = browser.post("/contacts/segments/count", {**FORM, "kind_0": "field", "field_0": "age",
                                                        "op_0": "gt", "value_0": "25"})
    assert "<strong class=\"count\">1</strong>" in body


def test_an_owner_saves_a_segment_and_the_list_shows_it(browser, console_db):
    _seed(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/segments/new")
    resp, body = browser.post("/contacts/segments/save", {**FORM, "action": "save"})
    assert "The segment is saved." in body
    with console_db.session() as s:
        seg = s.scalar(select(Segment))
        assert seg.filter == {"all": [{"tag": "vip"}, {"field": "city", "op": "eq", "value": "shanghai"}]}
    _, body = browser.get(f"/contacts/segments/{seg.id}/count")
    assert "<strong class=\"count\">1</strong>" in body


def test_a_condition_without_a_field_is_marked_and_nothing_is_saved(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/segments/new")
    resp, body = browser.post("/contacts/segments/save", {**FORM, "field_1": "", "action": "save"})
    assert resp.status == 422 and "Choose the field this condition looks at." in body
    resp, body = browser.post("/contacts/segments/save", {**FORM, "op_1": "in", "value_1": "",
                                                          "action": "save", "kind_0": "field", "field_0": "age",
                                                          "op_0": "bogus"})
    assert resp.status == 422 and "is not one of" in body
    with console_db.session() as s:
        assert s.scalars(select(Segment)).all() == []


def test_a_duplicate_segment_name_is_refused_on_the_name_field(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/segments/new")
    browser.post("/contacts/segments/save", {**FORM, "action": "save"})
    browser.get("/contacts/segments/new")
    resp, body = browser.post("/contacts/segments/save", {**FORM, "action": "save"})
    assert resp.status == 422 and 'id="e-name"' in body


def test_add_a_condition_shows_one_more_row_without_saving(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/segments/new")
    _, body = browser.post("/contacts/segments/save", {**FORM, "action": "add"})
    assert 'name="kind_2"' in body
    with console_db.session() as s:
        assert s.scalars(select(Segment)).all() == []


def test_an_analyst_sees_segments_but_cannot_save_or_delete(browser, console_db):
    with console_db.session() as s:
        s.add(Segment(tenant_id="acme", name="Seen", filter={"tag": "vip"}))
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/contacts/segments")
    assert "Seen" in body and "New segment</a>" not in body
    assert browser.post("/contacts/segments/save", {**FORM, "action": "save"})[0].status == 403
    with console_db.session() as s:
        sid = s.scalar(select(Segment.id))
    assert browser.post(f"/contacts/segments/{sid}/delete")[0].status == 403


def test_another_tenants_segment_is_404(browser, console_db):
    with console_db.session() as s:
        seg = Segment(tenant_id="acme", name="Mine", filter={"tag": "vip"})
        s.add(seg)
        s.flush()
        sid = seg.id
    browser.sign_in("owner@other.example")
    assert browser.get(f"/contacts/segments/{sid}")[0].status == 404
    assert browser.get(f"/contacts/segments/{sid}/count")[0].status == 404
    assert browser.post("/contacts/segments/save", {**FORM, "segment_id": sid, "action": "save"})[0].status == 404
    assert browser.post(f"/contacts/segments/{sid}/delete")[0].status == 404
    with console_db.session() as s:
        assert s.get(Segment, sid).name == "Mine"
