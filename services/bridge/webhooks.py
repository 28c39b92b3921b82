"""Webhooks for ERPs that cannot speak Kafka: inbound texts and status changes POSTed to the
tenant's URL, signed, retried with backoff for a day, in order per subscriber number.

The request
-----------
``POST <url>`` with the event as JSON (exactly the ``sms.inbound`` / ``sms.status`` event the
tenant's Kafka topics carry) and these headers:

- ``X-Herald-Event``: the event type (``sms.inbound`` or ``sms.status``)
- ``X-Herald-Event-Id``: the event id; the same event may come twice (a retry after a timeout
  the receiver did answer), so receivers deduplicate on it
- ``X-Herald-Delivery``: the delivery id; ``X-Herald-Attempt``: 1, 2, ...
- ``X-Herald-Timestamp``: Unix seconds when this attempt was signed
- ``X-Herald-Signature``: ``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``

Receivers recompute the signature over the raw body and reject it unless it matches (constant
time) and the timestamp is within ``REPLAY_WINDOW_S`` (5 minutes) of their clock: a captured
request cannot be replayed later, and each retry is signed afresh. ``verify`` does this.

Delivery
--------
Any 2xx answer delivers. Anything else (or no answer within ``webhook_timeout_s``) is retried
after ``webhook_backoff_base_s`` doubling up to ``webhook_backoff_max_s``, until the delivery is
``webhook_max_age_s`` (a day) old: then it is ``failed``, visible with ``herald webhooks failed``
or ``GET /v1/webhooks/deliveries?status=failed`` and replayable. Per (endpoint, subscriber
number) only the oldest pending delivery is attempted, so a subscriber's texts and statuses
arrive in the order the bridge saw them; a failed one stops blocking the ones after it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import mode
from prometheus_client import Counter, Histogram
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from services.core.carriers import sign
from services.core.db import Database
from services.core.db.bridge_models import WebhookDelivery, WebhookEndpoint, WebhookSecrets
from services.core.settings import Settings
from services.core.utc import aware as _aware

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300
ERROR_MAX = 500

DELIVERIES = Counter("herald_webhook_attempts_total", "Webhook POST attempts, by outcome", ["outcome"])
DELIVERY_SECONDS = Histogram("herald_webhook_seconds", "Time of one webhook POST",
                             buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


# -- signing -----------------------------------------------------------------------------------

def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    return sign(secret, f"{timestamp}.".encode("ascii") + body)


def headers_for(secret: str, body: bytes, *, event_type: str, event_id: str, delivery_id: int,
                attempt: int, now: float | None = None) -> dict[str, str]:
    ts = int(now if now is not None else time.time())
    return {"Content-Type": "application/json", "X-Herald-Event": event_type,
            "X-Herald-Event-Id": event_id, "X-Herald-Delivery": str(delivery_id),
            "X-Herald-Attempt": str(attempt), "X-Herald-Timestamp": str(ts),
            "X-Herald-Signature": signature(secret, ts, body)}


def verify(secret: str, body: bytes, headers: Mapping[str, str], *, now: float | None = None,
           window_s: int = REPLAY_WINDOW_S) -> bool:
    """What a receiver does: signature matches and the timestamp is fresh."""
    h = {k.lower(): v for k, v in headers.items()}
    ts = h.get("x-herald-timestamp", "")
    if not ts.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(ts)) > window_s:
        return False
    return hmac.compare_digest(h.get("x-herald-signature", "").encode(),
                               signature(secret, ts, body).encode())


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def backoff(attempts: int, base: float, cap: float, jitter: float = 0.1) -> float:
    """Delay before attempt ``attempts + 1``: base * 2^(attempts-1), capped, +-10% jitter so
    that many endpoints coming back at once are not hit in lockstep."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * (1 + random.uniform(-jitter, jitter)) if jitter else delay


# -- endpoints (CLI and API) -------------------------------------------------------------------

def set_endpoint(s: Session, settings: Settings, tenant_id: str, url: str,
                 secret: str | None = None) -> str:
    """Create or change a tenant's endpoint; returns the signing secret (shown once)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must start with http:// or https://")
    secret = secret or new_secret()
    sealed = WebhookSecrets(settings.secret_key).seal_text(secret)
    ep = s.scalar(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id))
    if ep is None:
        s.add(WebhookEndpoint(tenant_id=tenant_id, url=url, secret_sealed=sealed, active=True))
    else:
        ep.url, ep.secret_sealed, ep.active = url, sealed, True
        ep.updated_at = datetime.now(UTC)
    s.flush()
    return secret


def disable_endpoint(s: Session, tenant_id: str) -> bool:
    ep = s.scalar(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id))
    if ep is None:
        return False
    ep.active = False
    return True


def endpoint_of(s: Session, tenant_id: str) -> WebhookEndpoint | None:
    """The tenant's endpoint, active or not."""
    return s.scalar(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id))


def enable_endpoint(s: Session, tenant_id: str) -> bool:
    """Deliveries start again (those waiting while it was disabled go first), same secret."""
    ep = endpoint_of(s, tenant_id)
    if ep is None:
        return False
    ep.active, ep.updated_at = True, datetime.now(UTC)
    return True


def change_url(s: Session, tenant_id: str, url: str) -> bool:
    """Point the endpoint elsewhere and keep its secret (the receiver need not change it)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must start with http:// or https://")
    ep = endpoint_of(s, tenant_id)
    if ep is None:
        return False
    ep.url, ep.updated_at = url, datetime.now(UTC)
    return True


def rotate_secret(s: Session, settings: Settings, tenant_id: str) -> str | None:
    """A new signing secret for the endpoint (returned once; the old one stops signing at
    once), or None when the tenant has no endpoint."""
    ep = endpoint_of(s, tenant_id)
    if ep is None:
        return None
    secret = new_secret()
    ep.secret_sealed = WebhookSecrets(settings.secret_key).seal_text(secret)
    ep.updated_at = datetime.now(UTC)
    s.flush()
    return secret


def active_endpoint(s: Session, tenant_id: str) -> WebhookEndpoint | None:
    return s.scalar(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id,
                                                  WebhookEndpoint.active.is_(True)))


# -- the outbox --------------------------------------------------------------------------------

def ordering_key(event: dict[str, Any]) -> str:
    """The subscriber's number: inbound texts come from it, statuses are of messages to it."""
    return event["from"] if event.get("event_type") == "sms.inbound" else event["to"]


def enqueue(s: Session, endpoint: WebhookEndpoint, event: dict[str, Any], max_age_s: float,
            now: datetime | None = None) -> bool:
    """Add one delivery of ``event`` (idempotent by endpoint and event id)."""
    exists = s.scalar(select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id,
                                                       WebhookDelivery.event_id == event["event_id"]))
    if exists is not None:
        return False
    now = now or datetime.now(UTC)
    s.add(WebhookDelivery(
        endpoint_id=endpoint.id, tenant_id=endpoint.tenant_id, event_id=event["event_id"],
        event_type=event["event_type"], ordering_key=ordering_key(event),
        payload=json.dumps(event, ensure_ascii=False, separators=(",", ":")), status="pending",
        attempts=0, next_attempt_at=now, expires_at=now + timedelta(seconds=max_age_s)))
    s.flush()
    return True


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    url: str
    secret: str
    body: bytes
    event_type: str
    event_id: str
    attempt: int


def claim_due(s: Session, secret_key: str, limit: int, lease_s: float,
              now: datetime | None = None) -> list[Attempt]:
    """Claim up to ``limit`` deliveries that are due and first in line for their number.

    The claim is a conditional update of the lease, so two bridge workers never POST the same
    delivery at once, and the next delivery of a number is not eligible until this one is done.
    """
    now = now or datetime.now(UTC)
    d, older = WebhookDelivery, aliased(WebhookDelivery)
    head = ~select(older.id).where(older.endpoint_id == d.endpoint_id,
                                   older.ordering_key == d.ordering_key,
                                   older.status == "pending", older.id < d.id).exists()
    rows = s.execute(
        select(d, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
        .where(d.status == "pending", d.next_attempt_at <= now, WebhookEndpoint.active.is_(True),
               or_(d.lease_until.is_(None), d.lease_until < now), head)
        .order_by(d.id).limit(limit)).all()
    box = WebhookSecrets(secret_key)
    out = []
    for row, ep in rows:
        got = s.execute(update(WebhookDelivery)
                        .where(WebhookDelivery.id == row.id, WebhookDelivery.status == "pending",
                               or_(WebhookDelivery.lease_until.is_(None),
                                   WebhookDelivery.lease_until < now))
                        .values(lease_until=now + timedelta(seconds=lease_s))
                        .execution_options(synchronize_session=False)).rowcount
        if got == 1:
            out.append(Attempt(row.id, ep.url, box.open(ep.secret_sealed), row.payload.encode("utf-8"),
                               row.event_type, row.event_id, row.attempts + 1))
    return out


def record_result(s: Session, delivery_id: int, ok: bool, status_code: int | None,
                  error: str | None, settings: Settings, now: datetime | None = None,
                  jitter: float = 0.1) -> str:
    """Mark an attempt's outcome; returns the delivery's new status."""
    now = now or datetime.now(UTC)
    row = s.get(WebhookDelivery, delivery_id)
    if row is None:
        return "gone"
    row.attempts += 1
    row.last_status_code = status_code
    row.lease_until = None
    if ok:
        row.status, row.delivered_at, row.last_error = "delivered", now, None
        return row.status
    row.last_error = (error or f"HTTP {status_code}")[:ERROR_MAX]
    nxt = now + timedelta(seconds=backoff(row.attempts, settings.webhook_backoff_base_s,
                                          settings.webhook_backoff_max_s, jitter))
    if nxt > _aware(row.expires_at):
        row.status = "failed"
    else:
        row.next_attempt_at = nxt
    return row.status


def list_deliveries(s: Session, tenant_id: str, status: str | None = None,
                    limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` pages on (keyset: ids below it)."""
    q = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id)
    if status:
        q = q.where(WebhookDelivery.status == status)
    if before_id is not None:
        q = q.where(WebhookDelivery.id < before_id)
    rows = s.scalars(q.order_by(WebhookDelivery.id.desc()).limit(limit))
    return [{"id": r.id, "event_id": r.event_id, "event_type": r.event_type,
             "number": r.ordering_key, "status": r.status, "attempts": r.attempts,
             "last_status_code": r.last_status_code, "last_error": r.last_error,
             "created_at": _aware(r.created_at).isoformat(),
             "next_attempt_at": _aware(r.next_attempt_at).isoformat(),
             "delivered_at": _aware(r.delivered_at).isoformat() if r.delivered_at else None}
            for r in rows]


def replay(s: Session, tenant_id: str, max_age_s: float, ids: list[int] | None = None,
           now: datetime | None = None) -> int:
    """Put a tenant's failed deliveries (all, or those ``ids``) back in the queue for another
    day of attempts. Returns how many. Replayed deliveries keep their place by id."""
    now = now or datetime.now(UTC)
    cond = and_(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.status == "failed")
    if ids is not None:
        cond = and_(cond, WebhookDelivery.id.in_(ids))
    return s.execute(update(WebhookDelivery).where(cond).values(
        status="pending", attempts=0, next_attempt_at=now, lease_until=None,
        expires_at=now + timedelta(seconds=max_age_s))
        .execution_options(synchronize_session=False)).rowcount or 0


def counts(s: Session, tenant_id: str) -> dict[str, int]:
    rows = s.execute(select(WebhookDelivery.status, func.count()).where(
        WebhookDelivery.tenant_id == tenant_id).group_by(WebhookDelivery.status))
    return {status: n for status, n in rows}


# -- the sender --------------------------------------------------------------------------------

class Dispatcher(mode.Service):
    """POSTs due deliveries: claims heads of line, sends them concurrently, records outcomes."""

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__()
        self.db, self.settings = db, settings
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New deliveries were enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def on_start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.settings.webhook_timeout_s,
                                         follow_redirects=False)

    async def on_stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _post(self, a: Attempt) -> tuple[Attempt, bool, int | None, str | None]:
        assert self._client is not None
        t0 = time.perf_counter()
        try:
            r = await self._client.post(a.url, content=a.body, headers=headers_for(
                a.secret, a.body, event_type=a.event_type, event_id=a.event_id,
                delivery_id=a.delivery_id, attempt=a.attempt))
            ok = 200 <= r.status_code < 300
            DELIVERIES.labels("delivered" if ok else f"http_{r.status_code // 100}xx").inc()
            return a, ok, r.status_code, None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as exc:
            DELIVERIES.labels("connection_error").inc()
            return a, False, None, f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
        finally:
            DELIVERY_SECONDS.observe(time.perf_counter() - t0)

    def _claim(self) -> list[Attempt]:
        with self.db.session() as s:
            return claim_due(s, self.settings.secret_key, self.settings.webhook_concurrency,
                             lease_s=self.settings.webhook_timeout_s + 30)

    def _record(self, results: list[tuple[Attempt, bool, int | None, str | None]]) -> None:
        with self.db.session() as s:
            for a, ok, code, err in results:
                status = record_result(s, a.delivery_id, ok, code, err, self.settings)
                if status == "failed":
                    log.warning("bridge: webhook delivery %s failed for good: %s", a.delivery_id, err)

    async def run_once(self) -> int:
        attempts = await asyncio.to_thread(self._claim)
        if not attempts:
            return 0
        results = await asyncio.gather(*(self._post(a) for a in attempts))
        await asyncio.to_thread(self._record, list(results))
        return len(attempts)

    @mode.Service.task
    async def _dispatch_loop(self) -> None:
        while not self.should_stop:
            try:
                n = await self.run_once()
            except Exception:  # noqa: BLE001 - the database may be away; try again shortly
                log.exception("bridge: webhook dispatch failed; retrying")
                n = 0
            if n:
                continue  # more may be due (the next of a number, or more than one batch)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_s)
            except TimeoutError:
                pass
