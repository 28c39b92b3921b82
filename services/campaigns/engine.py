"""The campaigns processor's moving parts: the expander loop (a Faust task) and the handler of
campaigns.inbound. Both call the domain in worker threads and produce what it returns through
the processor, whose sends are acknowledged by the broker before anything is committed.

Loop, each turn: housekeeping (scheduled campaigns start, cron schedules fire, survey reminders
go, stale sessions expire, inquiries held by a vanished worker resume), then one chunk of every
runnable campaign this worker can lease: prepare -> wait for the tenant's send rate -> produce
and await acks -> commit the cursor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import Counter

from services.core.processor import In, Out, Processor, Rejected

from .config import CampaignsConfig
from .domain import conversations, inquiry, subscriptions, surveys
from .domain.expansion import Expander, Step

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 60.0

QUEUED = Counter("herald_campaigns_messages_total", "Campaign members decided, by outcome",
                 ["kind", "outcome"])
INBOUND = Counter("herald_campaigns_inbound_total", "Inbound texts handled, by what they were",
                  ["kind"])


def utcnow() -> datetime:
    return datetime.now(UTC)


class TokenBucket:
    """A tenant's send rate in this worker: a step waits until its messages fit the rate."""

    def __init__(self, rate: float, clock=time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.tokens = rate  # one second of burst
        self.stamp = clock()

    async def acquire(self, n: int) -> float:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


class Engine:
    def __init__(self, p: Processor, config: CampaignsConfig) -> None:
        assert p.db is not None
        self.p, self.db, self.config = p, p.db, config
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.expander = Expander(self.db.session, self.owner, lease_s=config.lease_s,
                                 default_rate=config.default_rate_per_second,
                                 greeting_check_s=config.greeting_check_s)
        self.buckets: dict[str, TokenBucket] = {}
        self._rates: dict[str, float] = {}
        self.http: httpx.AsyncClient | None = None
        self._stopping = False
        self._last_expire = 0.0
        self._last_housekeeping = 0.0
        self._asking: dict[str, asyncio.Future] = {}  # inbound message id -> its endpoint call
        self._lanes: dict[tuple[str, str], asyncio.Future] = {}  # (tenant, number) -> latest call
        self._gates: dict[str, asyncio.Semaphore] = {}  # tenant -> its concurrent calls

    # -- the expander loop -----------------------------------------------------------------------
    async def run(self) -> None:
        log.info("campaigns: engine %s started (chunk %d, lease %.0fs)", self.owner,
                 self.config.chunk_size, self.config.lease_s)
        while not self._stopping:
            try:
                busy = await self.cycle()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed turn is retried; the loop must live on
                log.exception("campaigns: engine turn failed; retrying")
                busy = False
            if not busy:
                await asyncio.sleep(self.config.tick_s)

    async def cycle(self) -> bool:
        if time.monotonic() - self._last_housekeeping >= self.config.tick_s:
            self._last_housekeeping = time.monotonic()
            await self.housekeeping(utcnow())
        busy = False
        for cid in await asyncio.to_thread(self.expander.runnable, utcnow()):
            if self._stopping:
                break
            busy = await self.step(cid) or busy
        return busy

    async def step(self, campaign_id: str) -> bool:
        step: Step | None = await asyncio.to_thread(self.expander.prepare, campaign_id, utcnow(),
                                                    self._limit(campaign_id))
        if step is None:
            return False
        if step.outs:
            bucket = self.buckets.get(step.tenant_id)
            if bucket is None or bucket.rate != step.rate:
                bucket = self.buckets[step.tenant_id] = TokenBucket(step.rate)
            await bucket.acquire(len(step.outs))
            await self.p.send(step.outs)
        await asyncio.to_thread(self.expander.commit, step, utcnow())
        self._rates[campaign_id] = step.rate
        kind = step.outs[0].value.get("attributes", {}).get("kind", "") if step.outs else ""
        if step.queued:
            QUEUED.labels(kind, "queued").inc(step.queued)
        if step.suppressed:
            QUEUED.labels(kind, "suppressed").inc(step.suppressed)
        # An idle step (nothing due yet) is not progress: let the loop sleep.
        return step.phase != "idle" and not (step.phase == "audience" and step.exhausted
                                             and not step.outs)

    def _limit(self, campaign_id: str) -> int:
        # About one second of sends per step at the campaign's rate (learnt from its last step),
        # so pause and cancel take effect quickly and a crash repeats little.
        rate = self._rates.get(campaign_id, self.config.default_rate_per_second)
        return max(1, min(self.config.chunk_size, int(rate)))

    async def housekeeping(self, now: datetime) -> None:
        await asyncio.to_thread(self.expander.promote_due, now)
        await asyncio.to_thread(self._fire_schedules, now)
        reminders = await asyncio.to_thread(self._reminders, now)
        if reminders:
            await self.p.send([o for _, o in reminders])
            await asyncio.to_thread(self._mark_reminded, [i for i, _ in reminders], now)
        if time.monotonic() - self._last_expire >= EXPIRE_EVERY_S:
            self._last_expire = time.monotonic()
            await asyncio.to_thread(self._expire, now)
            await self.resume_held(now)

    def _fire_schedules(self, now: datetime) -> None:
        with self.db.session() as s:
            for cid in subscriptions.fire_due(s, now):
                log.info("campaigns: schedule fired as campaign %s", cid)

    def _reminders(self, now: datetime) -> list[tuple[int, Out]]:
        with self.db.session() as s:
            return surveys.reminders_due(s, now)

    def _mark_reminded(self, ids: list[int], now: datetime) -> None:
        with self.db.session() as s:
            surveys.mark_reminded(s, ids, now)

    def _expire(self, now: datetime) -> None:
        with self.db.session() as s:
            surveys.expire(s, now)

    # -- campaigns.inbound -----------------------------------------------------------------------
    async def on_inbound(self, items: list[In]) -> list[Out]:
        """Each inbound in its own transaction, in order: a redelivered one replays its reply.

        A text the tenant's endpoint answers is recorded as held and asked outside the batch
        (``_dispatch``), so one tenant's slow ERP holds up neither this batch nor the next."""
        outs: list[Out] = []
        for item in items:
            outs += await self.inbound(item.event)
        return outs

    async def inbound(self, event: dict) -> list[Out]:
        if not event.get("tenant_id"):
            raise Rejected("campaigns.inbound event without tenant_id: the router sets it on every "
                           "text it hands over", "missing_tenant")
        result = await asyncio.to_thread(self._handle, event)
        if isinstance(result, conversations.NeedsEndpoint):
            await self._dispatch(event, result)
            return []
        return result

    def _handle(self, event: dict):
        with self.db.session() as s:
            result = conversations.handle(s, event, utcnow())
            if isinstance(result, conversations.NeedsEndpoint):
                conversations.hold(s, event, result, utcnow())
                return result
        kind = result[0].value.get("attributes", {}).get("kind", "none") if result else "none"
        INBOUND.labels(kind).inc()
        return result

    async def _dispatch(self, event: dict, pending: conversations.NeedsEndpoint) -> None:
        """Ask the endpoint in a task of its own: at most ``inquiry_concurrency`` calls at once
        per tenant, one number's inquiries in the order they came (each waits for the one
        before), and no more than ``inquiry_backlog`` held in this worker (beyond that the
        consumer waits: backpressure instead of unbounded memory)."""
        while len(self._asking) >= self.config.inquiry_backlog:
            await asyncio.wait(set(self._asking.values()), return_when=asyncio.FIRST_COMPLETED)
        mid = event["message_id"]
        if mid in self._asking:  # a redelivery of an inquiry this worker is asking already
            return
        lane = (event["tenant_id"], event["from"])
        before = self._lanes.get(lane)
        task = asyncio.ensure_future(self._answer(event, pending, before))
        self._asking[mid] = task
        self._lanes[lane] = task

        def done(_: asyncio.Future) -> None:
            self._asking.pop(mid, None)
            if self._lanes.get(lane) is task:
                del self._lanes[lane]
        task.add_done_callback(done)

    async def _answer(self, event: dict, pending: conversations.NeedsEndpoint,
                      before: asyncio.Future | None) -> None:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own; only the order matters here
        tenant = event["tenant_id"]
        gate = self._gates.get(tenant)
        if gate is None:
            gate = self._gates[tenant] = asyncio.Semaphore(self.config.inquiry_concurrency)
        try:
            async with gate:
                answer = await inquiry.ask(self._client(), pending.call)
            INBOUND.labels("inquiry_endpoint" if answer else "inquiry_fallback").inc()
            # Sent before it is recorded: a crash in between leaves the inquiry held, and the
            # resumed answer carries the same request id, so egress sends one reply.
            await self.p.send(conversations.answer_outs(event, pending, answer))
            await asyncio.to_thread(self._finish, event, pending, answer)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the inquiry stays held; resume_held retries it
            log.exception("campaigns: answering inquiry %s failed; it will be resumed",
                          event["message_id"])

    async def resume_held(self, now: datetime) -> int:
        """Held inquiries whose worker is gone (older than ``inquiry_resume_after_s``, not being
        asked here) are asked again; returns how many were picked up."""
        cutoff = now - timedelta(seconds=self.config.inquiry_resume_after_s)
        events = await asyncio.to_thread(self._held, cutoff)
        n = 0
        for event in events:
            if event["message_id"] in self._asking:
                continue
            result = await asyncio.to_thread(self._resume, event)
            if isinstance(result, conversations.NeedsEndpoint):
                await self._dispatch(event, result)
            else:
                await self.p.send(result)
            n += 1
        return n

    def _held(self, cutoff: datetime) -> list[dict]:
        with self.db.session() as s:
            return conversations.held(s, cutoff)

    def _resume(self, event: dict):
        with self.db.session() as s:
            return conversations.resume(s, event, utcnow())

    def _finish(self, event: dict, pending: conversations.NeedsEndpoint, answer: str | None) -> list[Out]:
        with self.db.session() as s:
            return conversations.finish(s, event, pending, answer, utcnow())

    def _client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=self.config.http_timeout_s)
        return self.http

    # -- stopping --------------------------------------------------------------------------------
    async def close(self) -> None:
        self._stopping = True
        try:
            await asyncio.to_thread(self.expander.release)
        except Exception:  # noqa: BLE001 - the leases then simply expire
            log.exception("campaigns: releasing leases failed")
        for task in list(self._asking.values()):  # held in the database: resumed by a worker
            task.cancel()
        if self.http is not None:
            await self.http.aclose()
