"""The operator's pipeline page: every process's /health, consumer lag per topic and partition,
DLQ topics with counts, refreshed by an htmx partial; a broker that does not answer is named,
not a crash; tenant users get 404."""

from __future__ import annotations

import pytest

from services.core import dlq_replay as dq
from services.core import kafka_admin as ka


@pytest.fixture
def kafka(monkeypatch):
    async def healths(settings, timeout=1.5, urls=None):
        return [ka.Health("router", "http://127.0.0.1:8081/health", "ok",
                          {"status": "ok", "checks": {"kafka": {"ok": True}, "database": {"ok": True}}}),
                ka.Health("verifier", "http://127.0.0.1:8084/health", "unreachable", error="ConnectError")]
    groups = [ka.GroupLag("herald-verifier", "verifier", "Empty", 0,
                          [ka.PartitionLag("codes.submitted", 0, 10, 17), ka.PartitionLag("codes.submitted", 1, 5, 5)]),
              ka.GroupLag("herald-router", "router", "Stable", 1, [])]
    monkeypatch.setattr(ka, "healths", healths)
    monkeypatch.setattr(ka, "lag", lambda settings, timeout=5.0: groups)
    monkeypatch.setattr(dq, "topics", lambda settings, timeout=0: [dq.DlqTopic("sms.inbound.dlq", "sms.inbound.dlq", 3, 1)])
    return groups


def test_health_lag_per_partition_and_dlq_counts_are_shown_and_refreshed(browser, kafka):
    browser.sign_in("ops@herald.example")
    resp, body = browser.get("/operator/pipeline")
    assert resp.status == 200 and 'hx-get="/operator/pipeline/live"' in body and 'hx-trigger="every 3s"' in body
    assert "not answering" in body and "healthy" in body
    assert 'data-topic="codes.submitted" data-partition="0" data-lag="7"' in body
    assert 'data-partition="1" data-lag="0"' in body
    assert 'data-processor="verifier">7<' in body
    assert "sms.inbound.dlq" in body and "Nothing committed yet" in body
    resp, body = browser.get("/operator/pipeline/live")
    assert resp.status == 200 and "<html" not in body and 'data-lag="7"' in body


def test_a_broker_that_does_not_answer_is_named_on_the_page(browser, kafka, monkeypatch):
    def down(settings, timeout=5.0):
        raise RuntimeError("KafkaError{code=_TRANSPORT}")
    monkeypatch.setattr(ka, "lag", down)
    browser.sign_in("ops@herald.example")
    resp, body = browser.get("/operator/pipeline")
    assert resp.status == 200 and "The broker could not be asked: KafkaError{code=_TRANSPORT}" in body


def test_the_group_lag_is_the_high_watermark_minus_the_committed_offset():
    assert ka.PartitionLag("t", 0, None, 12).lag == 12
    assert ka.PartitionLag("t", 0, 15, 12).lag == 0
    assert ka.GroupLag("g", "p", "Stable", 1, [ka.PartitionLag("t", 0, 2, 5), ka.PartitionLag("t", 1, 1, 2)]).total == 4


def test_health_is_fetched_concurrently_and_a_silent_process_is_unreachable(browser):
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def run():
        app = web.Application()
        app.router.add_get("/health", lambda r: web.json_response({"status": "degraded"}, status=503))
        server = TestServer(app)
        await server.start_server()
        try:
            return await ka.healths(None, timeout=0.5, urls={
                "egress": str(server.make_url("/health")), "ledger": "http://127.0.0.1:9/health"})
        finally:
            await server.close()
    got = {h.name: h for h in asyncio.new_event_loop().run_until_complete(run())}
    assert got["egress"].status == "degraded" and got["egress"].error == "HTTP 503"
    assert got["ledger"].status == "unreachable"


def test_tenant_users_get_404(browser_factory, kafka):
    for email in ("owner@acme.example", "analyst@acme.example", "owner@other.example"):
        b = browser_factory()
        b.sign_in(email)
        assert b.get("/operator/pipeline")[0].status == 404
        assert b.get("/operator/pipeline/live")[0].status == 404
