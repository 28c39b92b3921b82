"""The operator's numbers and keywords page: every tenant's numbers with their conflicts, keyword
conflicts on shared numbers, and moving a number between tenants (refused, naming the field,
while a rule uses it; audited); tenant users get 404."""

from __future__ import annotations

from services.core import tenancy
from services.core.db.console_models import AuditEntry
from services.core.db.models import Keyword, SenderNumber


def seed(db):
    with db.session() as s:
        tenancy.add_number(s, "acme", "10690001")
        tenancy.add_number(s, "other", "10690001")  # held twice, not shared: a conflict
        tenancy.add_number(s, "acme", "10690002")
        tenancy.add_keyword(s, "acme", "INFO", "reply", number="10690002", reply_text="Acme info")
        tenancy.add_number(s, "acme", "10699000", shared=True)
        tenancy.add_number(s, "other", "10699000", shared=True)
        # Both answer JOIN there: rules made before the number was shared (add_keyword refuses
        # such a rule today), so the overview must still find them.
        s.add_all([Keyword(tenant_id=t, keyword="JOIN", action="inbox") for t in ("acme", "other")])
        tenancy.add_number(s, "acme", "10690003")


def test_numbers_of_every_tenant_and_their_conflicts_are_listed(browser, console_db):
    seed(console_db)
    browser.sign_in("ops@herald.example")
    resp, body = browser.get("/operator/numbers")
    assert resp.status == 200
    assert body.count("Also held by another tenant, not shared") == 2
    assert "held by other too" in body and "held by acme too" in body
    assert 'id="keyword-conflicts"' in body and "<strong>JOIN</strong>" in body
    _, body = browser.get("/operator/numbers?q=10690002")
    assert "10690002" in body and "10690003" not in body


def test_a_number_moves_to_another_tenant_and_the_move_is_audited(browser, console_db):
    seed(console_db)
    browser.sign_in("ops@herald.example")
    browser.get("/operator/numbers")
    resp, body = browser.post("/operator/numbers/reassign", {"number": "10690003", "from_tenant": "acme",
                                                             "to_tenant": "other"})
    assert resp.status == 200 and "10690003 now belongs to other." in body
    with console_db.session() as s:
        assert [n.tenant_id for n in s.query(SenderNumber).filter_by(number="10690003")] == ["other"]
        entry = s.query(AuditEntry).filter_by(action="reassign").one()
        assert entry.tenant_id is None and entry.before == {"tenant": "acme"}


def test_a_number_a_rule_uses_is_not_moved_and_the_field_is_named(browser, console_db):
    seed(console_db)
    browser.sign_in("ops@herald.example")
    browser.get("/operator/numbers")
    resp, body = browser.post("/operator/numbers/reassign", {"number": "10690002", "from_tenant": "acme",
                                                             "to_tenant": "other"})
    assert resp.status == 422 and "Routing rules of this tenant use this number" in body
    assert 'id="e-number"' in body
    resp, body = browser.post("/operator/numbers/reassign", {"number": "10690003", "from_tenant": "acme",
                                                             "to_tenant": "nobody"})
    assert resp.status == 422 and "There is no tenant with this id." in body
    with console_db.session() as s:
        assert [n.tenant_id for n in s.query(SenderNumber).filter_by(number="10690002")] == ["acme"]


def test_tenant_users_get_404_and_cannot_move_numbers(browser_factory, console_db):
    seed(console_db)
    for email in ("owner@acme.example", "owner@other.example"):
        b = browser_factory()
        b.sign_in(email)
        assert b.get("/operator/numbers")[0].status == 404
        b.get("/")
        assert b.post("/operator/numbers/reassign", {"number": "10690003", "from_tenant": "acme",
                                                     "to_tenant": "other"})[0].status == 404
    with console_db.session() as s:
        assert [n.tenant_id for n in s.query(SenderNumber).filter_by(number="10690003")] == ["acme"]
