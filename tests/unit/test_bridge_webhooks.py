"""Webhook signing, backoff and the outbox's ordering rules, on SQLite, without HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.bridge import webhooks
from services.core.db.bridge_models import WebhookDelivery, WebhookEndpoint, WebhookSecrets
from services.core.schemas import new_event
from services.core.settings import Settings
from services.core.tenancy import create_tenant

SETTINGS = Settings(secret_key="unit-test-key", webhook_backoff_base_s=2.0, webhook_backoff_max_s=60,
                    webhook_max_age_s=3600)
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_a_signature_covers_timestamp_and_body_and_expires_after_the_replay_window():
    body = b'{"event_id":"x"}'
    h = webhooks.headers_for("s3cret", body, event_type="sms.status", event_id="x", delivery_id=7,
                             attempt=1, now=1_000_000)
    assert webhooks.verify("s3cret", body, h, now=1_000_000 + 299)
    assert not webhooks.verify("s3cret", body, h, now=1_000_000 + 301)  # replayed too late
    assert not webhooks.verify("s3cret", body + b" ", h, now=1_000_000)
    assert not webhooks.verify("other", body, h, now=1_000_000)
    forged = {**h, "X-Herald-Timestamp": str(1_000_000 + 100)}  # fresh time, old signature
    assert not webhooks.verify("s3cret", body, forged, now=1_000_000 + 100)
    assert h["X-Herald-Signature"].startswith("sha256=") and h["X-Herald-Delivery"] == "7"


def test_backoff_doubles_from_the_base_up_to_the_cap():
    assert [webhooks.backoff(n, 5, 3600, jitter=0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert webhooks.backoff(20, 5, 3600, jitter=0) == 3600
    assert 4.5 <= webhooks.backoff(1, 5, 3600) <= 5.5


def test_secrets_are_sealed_at_rest_and_open_only_with_the_same_key():
    sealed = WebhookSecrets("k1").seal_text("whsec_abc")
    assert "whsec_abc" not in sealed
    assert WebhookSecrets("k1").open(sealed) == "whsec_abc"
    with pytest.raises(ValueError):
        WebhookSecrets("k2").open(sealed)
    assert "whsec" not in repr(WebhookSecrets("k1"))


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme")
        webhooks.set_endpoint(s, SETTINGS, "acme", "http://127.0.0.1:9/hook", secret="whsec_test")
    return sqlite_db


def status(to: str, status: str, n: int) -> dict:
    ev = new_event("sms.status", "acme", message_id=f"00000000-0000-4000-8000-{n:012d}", to=to,
                   status=status, occurred_at="2026-11-28T10:00:00Z")
    return ev


def enqueue(db, *events) -> None:
    with db.session() as s:
        ep = s.scalar(select(WebhookEndpoint))
        for e in events:
            webhooks.enqueue(s, ep, e, SETTINGS.webhook_max_age_s, now=T0)


def claim(db, now=T0, limit=10):
    with db.session() as s:
        return webhooks.claim_due(s, SETTINGS.secret_key, limit, lease_s=30, now=now)


def result(db, delivery_id, ok, now=T0):
    with db.session() as s:
        return webhooks.record_result(s, delivery_id, ok, 200 if ok else 500, None, SETTINGS, now=now,
                                      jitter=0)


def test_the_secret_is_stored_sealed(db):
    with db.session() as s:
        ep = s.scalar(select(WebhookEndpoint))
        assert "whsec_test" not in ep.secret_sealed


def test_an_event_is_queued_once_per_endpoint(db):
    e = status("+8613800000001", "sent", 1)
    enqueue(db, e, e)
    with db.session() as s:
        assert len(s.scalars(select(WebhookDelivery)).all()) == 1


def test_only_the_oldest_pending_delivery_of_a_number_is_attempted(db):
    a1, a2 = status("+8613800000001", "sent", 1), status("+8613800000001", "delivered", 1)
    b1 = status("+8613800000002", "sent", 2)
    enqueue(db, a1, a2, b1)
    got = claim(db)
    assert [json.loads(x.body)["event_id"] for x in got] == [a1["event_id"], b1["event_id"]]
    assert claim(db) == []  # leased: a second worker gets nothing
    assert got[0].secret == "whsec_test" and got[0].attempt == 1


def test_a_failed_attempt_is_retried_after_the_backoff_and_holds_back_its_number(db):
    a1, a2 = status("+8613800000001", "sent", 1), status("+8613800000001", "delivered", 1)
    enqueue(db, a1, a2)
    (first,) = claim(db)
    assert result(db, first.delivery_id, ok=False) == "pending"
    assert claim(db, now=T0 + timedelta(seconds=1)) == []  # a2 waits behind a1's retry
    (again,) = claim(db, now=T0 + timedelta(seconds=2.5))
    assert again.delivery_id == first.delivery_id and again.attempt == 2
    assert result(db, again.delivery_id, ok=True, now=T0 + timedelta(seconds=3)) == "delivered"
    (nxt,) = claim(db, now=T0 + timedelta(seconds=3))
    assert json.loads(nxt.body)["event_id"] == a2["event_id"]


def test_a_delivery_that_keeps_failing_for_its_max_age_fails_and_stops_blocking_then_replays(db):
    a1, a2 = status("+8613800000001", "sent", 1), status("+8613800000001", "delivered", 1)
    enqueue(db, a1, a2)
    now = T0
    while True:
        (x,) = claim(db, now=now)
        assert json.loads(x.body)["event_id"] == a1["event_id"]
        if result(db, x.delivery_id, ok=False, now=now) == "failed":
            break
        now += timedelta(seconds=61)
    assert now - T0 <= timedelta(seconds=SETTINGS.webhook_max_age_s)
    (x,) = claim(db, now=now)
    assert json.loads(x.body)["event_id"] == a2["event_id"]
    with db.session() as s:
        (failed,) = webhooks.list_deliveries(s, "acme", "failed")
        assert failed["attempts"] >= 6 and failed["last_status_code"] == 500
        assert webhooks.replay(s, "globex", 3600) == 0  # only its own tenant's
        assert webhooks.replay(s, "acme", 3600, now=now) == 1
        assert webhooks.counts(s, "acme") == {"pending": 2}


def test_an_inactive_endpoint_gets_nothing_until_enabled_again(db):
    enqueue(db, status("+8613800000001", "sent", 1))
    with db.session() as s:
        assert webhooks.disable_endpoint(s, "acme")
    assert claim(db) == []
    with db.session() as s:
        webhooks.set_endpoint(s, SETTINGS, "acme", "http://127.0.0.1:9/hook", secret="whsec_test")
    assert len(claim(db)) == 1


def test_an_endpoint_url_must_be_http():
    with pytest.raises(ValueError):
        webhooks.set_endpoint(None, SETTINGS, "acme", "ftp://example.com")
