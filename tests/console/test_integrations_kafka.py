"""The Kafka card of the integrations page: the tenant's own topics and how its ERP connects,
never a password, never another tenant's topics."""

from services.console.views.integrations import kafka_access
from services.core.settings import Settings


def test_the_page_lists_the_tenants_four_topics_and_the_bootstrap_address(browser):
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/integrations")
    assert resp.status == 200
    for kind in ("outbound", "inbound", "status", "dlq"):
        assert f"<code>tenant.acme.{kind}</code>" in body
    assert "tenant.other." not in body and "127.0.0.1:1" in body
    assert "Authorization: Bearer &lt;key&gt;" in body  # shown, not swallowed as a tag


def test_on_a_sasl_broker_the_user_name_is_the_acl_schemes_and_no_password_is_shown():
    settings = Settings(kafka_bootstrap="kafka.example:9093", kafka_security_protocol="SASL_SSL",
                        kafka_username="herald", kafka_password="platform-secret",
                        topic_prefix="prod.")
    access = kafka_access(settings, "acme")
    assert access["sasl"] and access["user"] == "tenant-acme"
    assert [t["name"] for t in access["topics"]] == [
        "prod.tenant.acme.outbound", "prod.tenant.acme.inbound", "prod.tenant.acme.status",
        "prod.tenant.acme.dlq"]
    assert access["group_prefix"] == "prod.tenant.acme."
    assert "platform-secret" not in str(access) and "herald" not in str(access).replace("herald_acl", "")


def test_a_platform_operator_gets_404_for_the_integrations_page(browser):
    browser.sign_in("ops@herald.example")
    resp, _ = browser.get("/integrations")
    assert resp.status == 404
