"""The bridge processor's Faust app.

- ``tenant.<id>.outbound`` (every tenant, by pattern) -> ``sms.outbound``; rejected requests to
  ``tenant.<id>.dlq`` with the reason.
- ``tenant.<id>.inbound`` (by pattern) -> recorded for replies, and queued for the tenant's
  webhook if it has one.
- ``sms.status`` -> ``tenant.<id>.status``, and queued for the tenant's webhook.
- The webhook dispatcher POSTs what is queued. The console's ``/v1/webhooks/...`` API lists
  deliveries and replays failed ones (services/console/api/webhooks.py).

Start-up: settings -> database -> Faust app (producer, Faust agent on sms.status, the two
pattern consumers, the dispatcher, web: /health and /metrics) -> run until SIGTERM/SIGINT ->
stop in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter

from services.core import inbound_log, topics
from services.core.processor import In, Out, Processor
from services.core.settings import Settings
from services.core.topics import ensure_topics, tenant_dlq, tenant_topics

from . import domain, webhooks

log = logging.getLogger(__name__)

REQUESTS = Counter("herald_bridge_requests_total", "ERP requests taken from tenant topics, by outcome",
                   ["tenant", "outcome"])
PRUNE_EVERY_S = 600.0


class Bridge:
    def __init__(self, p: Processor, dispatcher: webhooks.Dispatcher) -> None:
        assert p.db is not None
        self.p, self.db, self.settings = p, p.db, p.settings
        self.gateway = domain.Gateway()
        self.dispatcher = dispatcher
        self._topics_ready: set[str] = set()
        self._timed_out: dict[str, float] = {}  # inbound ids a reply already waited for in vain
        self._last_prune = 0.0

    # -- ERP requests ------------------------------------------------------------------------
    def _requests(self, items: list[In]) -> list[Out | domain.InboundNotSeen]:
        out: list[Out | domain.InboundNotSeen] = []
        with self.db.session() as s:
            for item in items:
                tenant = domain.tenant_of(item.topic or "")
                try:
                    out.append(self.gateway.request(s, tenant, item.event))
                except domain.InboundNotSeen as exc:
                    out.append(exc)
        return out

    async def on_requests(self, items: list[In]) -> list[Out]:
        results = await asyncio.to_thread(self._requests, items)
        waiting = [i for i, r in enumerate(results) if isinstance(r, domain.InboundNotSeen)
                   and r.message_id not in self._timed_out]
        # A reply can overtake its inbound: the ERP read tenant.<id>.inbound before this process
        # recorded it. Wait a little for the recording before calling the id unknown.
        deadline = time.monotonic() + self.settings.bridge_reply_wait_s
        while waiting and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            again = await asyncio.to_thread(self._requests, [items[i] for i in waiting])
            for i, r in zip(waiting, again, strict=True):
                results[i] = r
            waiting = [i for i in waiting if isinstance(results[i], domain.InboundNotSeen)]
        outs: list[Out] = []
        for item, r in zip(items, results, strict=True):
            tenant = domain.tenant_of(item.topic or "")
            if isinstance(r, domain.InboundNotSeen):
                self._timed_out[r.message_id] = time.monotonic()
                REQUESTS.labels(tenant, "rejected").inc()
                raise domain.unknown_inbound(tenant, r.message_id,
                                             self.settings.bridge_inbound_retention_days)
            outs.append(r)
        for item in items:
            REQUESTS.labels(domain.tenant_of(item.topic or ""), "accepted").inc()
        self._forget_timeouts()
        return outs

    def _forget_timeouts(self) -> None:
        if len(self._timed_out) > 1000:
            cutoff = time.monotonic() - 600
            self._timed_out = {k: v for k, v in self._timed_out.items() if v > cutoff}

    # -- inbound for the tenant ----------------------------------------------------------------
    def _inbound(self, items: list[In]) -> int:
        queued = 0
        with self.db.session() as s:
            endpoints: dict[str, Any] = {}
            for item in items:
                tenant = domain.tenant_of(item.topic or "")
                domain.record_inbound(s, tenant, item.event)
                queued += self._enqueue(s, endpoints, tenant, item.event)
            # The console's inbox: these texts went to the tenant's inbox (one batch write).
            inbound_log.record(s, inbound_log.TENANT_INBOX, [i.event for i in items])
            if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                self._last_prune = time.monotonic()
                domain.prune_inbound(s, self.settings.bridge_inbound_retention_days)
        return queued

    async def on_inbound(self, items: list[In]) -> list[Out]:
        if await asyncio.to_thread(self._inbound, items):
            self.dispatcher.wake()
        return []

    # -- status for the tenant -----------------------------------------------------------------
    def _status(self, items: list[In]) -> int:
        queued = 0
        with self.db.session() as s:
            endpoints: dict[str, Any] = {}
            for item in items:
                queued += self._enqueue(s, endpoints, item.event["tenant_id"], item.event)
        return queued

    def _enqueue(self, s, endpoints: dict[str, Any], tenant: str, event: dict[str, Any]) -> int:
        if tenant not in endpoints:
            endpoints[tenant] = webhooks.active_endpoint(s, tenant)
        ep = endpoints[tenant]
        if ep is None:
            return 0
        return int(webhooks.enqueue(s, ep, event, self.settings.webhook_max_age_s))

    async def on_status(self, items: list[In]) -> list[Out]:
        await self._ensure_tenant_topics({i.event["tenant_id"] for i in items})
        if await asyncio.to_thread(self._status, items):
            self.dispatcher.wake()
        return [domain.status_copy(i.event) for i in items]

    async def _ensure_tenant_topics(self, tenants: set[str]) -> None:
        """Tenant topics are made with the tenant; a tenant made by other means (or before the
        topics existed) gets them here, since the broker creates no topic by itself."""
        missing = tenants - self._topics_ready
        if not missing:
            return
        extra = tuple(spec for t in sorted(missing) for spec in tenant_topics(t))
        await asyncio.to_thread(ensure_topics, self.settings, extra)
        self._topics_ready |= missing


def build(settings: Settings | None = None) -> Processor:
    p = Processor("bridge", settings=settings)
    assert p.db is not None
    dispatcher = webhooks.Dispatcher(p.db, p.settings)
    bridge = Bridge(p, dispatcher)

    def tenant_for(topic: str, _event: dict[str, Any]) -> str:
        return domain.tenant_of(topic)

    def dlq_for(topic: str) -> str:
        return tenant_dlq(domain.tenant_of(topic))

    refresh = p.settings.bridge_topic_refresh_ms
    p.consume_pattern("erp-requests", domain.OUTBOUND_PATTERN, bridge.on_requests,
                      decoder=domain.parse_request, dlq_for=dlq_for, tenant_for=tenant_for,
                      refresh_ms=refresh)
    p.consume_pattern("tenant-inbound", domain.INBOUND_PATTERN, bridge.on_inbound, dlq_for=dlq_for,
                      tenant_for=tenant_for, refresh_ms=refresh)
    p.consume(topics.SMS_STATUS, bridge.on_status)
    p.app.service(dispatcher)
    return p
