"""The content library and the endpoints of the tenant's system."""

from services.core.db.campaigns_models import ContentItem, TenantEndpoint
from services.core.db.console_models import AuditEntry


def test_an_empty_library_says_what_to_add(browser):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/campaigns/content")
    assert resp.status == 200 and "No content yet" in body and "No endpoint yet" in body


def test_an_owner_saves_a_content_item_and_it_is_listed_and_audited(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/content")
    resp, body = browser.post("/campaigns/content", {"name": "prices", "body": "Rice 3.20",
                                                     "for_date": ""})
    assert resp.status == 200 and "The content item prices is saved." in body
    assert "Rice 3.20" in body
    with console_db.session() as s:
        assert s.query(ContentItem).filter_by(tenant_id="acme", name="prices").one().body == "Rice 3.20"
        assert s.query(AuditEntry).filter_by(object_type="content", object_id="prices").count() == 1


def test_a_bad_name_and_a_bad_date_are_shown_on_their_fields(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/content")
    resp, body = browser.post("/campaigns/content", {"name": "Price List!", "body": "x"})
    assert resp.status == 422 and 'id="e-name"' in body
    resp, body = browser.post("/campaigns/content", {"name": "prices", "body": "x",
                                                     "for_date": "tomorrow"})
    assert resp.status == 422 and 'id="e-for_date"' in body
    with console_db.session() as s:
        assert s.query(ContentItem).count() == 0


def test_an_endpoint_is_saved_and_a_bad_address_is_refused_on_its_field(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/content")
    resp, body = browser.post("/campaigns/endpoints", {"ep_name": "erp", "url": "ftp://x"})
    assert resp.status == 422 and 'id="e-url"' in body
    resp, body = browser.post("/campaigns/endpoints", {"ep_name": "erp",
                                                       "url": "https://erp.example/inq",
                                                       "timeout_s": "5"})
    assert resp.status == 200 and "https://erp.example/inq" in body
    with console_db.session() as s:
        ep = s.query(TenantEndpoint).filter_by(tenant_id="acme", name="erp").one()
        assert ep.timeout_s == 5.0


def test_an_analyst_sees_the_library_but_cannot_change_it(browser, console_db):
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/campaigns/content")
    assert resp.status == 200 and 'method="post" action="/campaigns/content"' not in body
    resp, _ = browser.post("/campaigns/content", {"name": "prices", "body": "x"})
    assert resp.status == 403
    resp, _ = browser.post("/campaigns/endpoints", {"ep_name": "erp", "url": "https://e.example"})
    assert resp.status == 403
    with console_db.session() as s:
        assert s.query(ContentItem).count() == 0 and s.query(TenantEndpoint).count() == 0


def test_another_tenants_content_is_not_shown(browser, console_db):
    from services.campaigns.domain import content
    with console_db.session() as s:
        content.put(s, "other", "secret-prices", {"body": "Other's prices"})
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/campaigns/content")
    assert "secret-prices" not in body
