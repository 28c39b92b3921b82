"""The egress processor: sms.outbound -> carriers -> sms.status, and sms.delivery -> sms.status.

Start-up: settings -> database -> carriers, connectors, rate buckets -> the optouts view, read
to its end (an on_start hook: before any record is consumed) -> consumers -> SMPP binds. Shutdown
stops them in reverse: consumers, then connectors and buckets, then the optouts view.

An outbound batch is handled in three steps so that nothing is sent twice by a retry of the
batch: (1) one DB transaction records and decides every message (a failure here retries the
batch before anything was sent); (2) the sends run concurrently, each ending in a result or a
named failure, never an exception; (3) the results are recorded, retried until the DB takes
them. The status events of all three steps are produced before the offsets are committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from services.carriers import Connector, SubmitResult
from services.carriers import build as build_connector
from services.carriers.smpp import parts as smpp_parts
from services.core import metrics
from services.core.carriers import Carrier, load_carriers
from services.core.concurrency import bounded_map
from services.core.dlq import dlq_record
from services.core.processor import In, Out, Processor
from services.core.rdkafka_core import OVERLAP
from services.core.retry import until_done
from services.core.schemas import encode
from services.core.secrets import SecretBox
from services.core.topics import SMS_DELIVERY, SMS_OUTBOUND, SMS_STATUS, dlq_name
from services.egress import deferral, dlr, domain
from services.egress.delivery import PermanentFailure, RetryBudgetExhausted, submit_with_failover
from services.egress.domain import SendPlan
from services.egress.optouts import OptOutView
from services.egress.ratelimit import SharedTokenBucket

log = logging.getLogger(__name__)

SEND_CONCURRENCY = 64  # sends in flight per worker; the carriers' rate limits apply on top
FAILOVER_AFTER = 2  # a carrier that fails transiently twice in a row hands over to the next
OPTOUTS_START_TIMEOUT_S = 60.0
SWEEP_INTERVAL_S = 5.0
# Back-pressure: a batch sleeps at most this long for a carrier; a longer wait parks the message
# (services/egress/deferral.py) so the batch's other carriers' messages go on.
IN_BATCH_MAX_WAIT_S = 1.0
THROTTLE_PAUSE_S = 1.0  # a 429 without Retry-After pauses the carrier this long
REDRIVE_INTERVAL_S = 0.5
REDRIVE_BATCH = 200
REDRIVE_LEASE_S = 120.0  # a claimed parked message is another worker's again after this
# A carrier that takes a message after RECOVERED_AFTER_S without trouble pulls its parked
# messages forward (at most every PULL_INTERVAL_S, as many as its rate sends in that time).
RECOVERED_AFTER_S = 2.0
PULL_INTERVAL_S = 5.0

SUBMITS = Counter("herald_egress_submits_total", "Messages handed to carriers, by outcome",
                  ["carrier", "outcome"])


class Unexpected(Exception):
    """A send that ended in an error no connector names (a bug): recorded and dead-lettered."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.reason = str(self)


Result = SubmitResult | PermanentFailure | RetryBudgetExhausted | Unexpected


class Egress:
    def __init__(self, p: Processor, carriers: dict[str, Carrier], connectors: dict[str, Connector],
                 buckets: dict[str, SharedTokenBucket], optouts: OptOutView) -> None:
        assert p.db is not None
        self.p, self.db, self.settings = p, p.db, p.settings
        self.carriers, self.connectors, self.buckets, self.optouts = carriers, connectors, buckets, optouts
        self._slots = asyncio.Semaphore(SEND_CONCURRENCY)
        self._last_purge = 0.0
        self.box = SecretBox(self.settings.secret_key, deferral.SEAL_PURPOSE)
        # carrier -> monotonic time it last pushed back (throttled, unreachable, 5xx), and when
        # its parked messages were last pulled forward
        self._trouble: dict[str, float] = {}
        self._pulled: dict[str, float] = {}

    # -- sms.outbound -------------------------------------------------------------------------
    async def on_outbound(self, items: list[In]) -> list[Out]:
        decided = await asyncio.to_thread(self._decide, items)
        outs = [self._status(ev) for _, d in decided for ev in d.statuses]
        plans = [(item, d.plan) for item, d in decided if d.plan is not None]
        if not plans:
            return outs
        results = await bounded_map(self._send, [plan for _, plan in plans], SEND_CONCURRENCY)
        done = [(item, plan, res) for (item, plan), res in zip(plans, results, strict=True)]
        known = {d.plan.submission.message_id: d.message for _, d in decided
                 if d.plan is not None and d.message is not None}
        return outs + await self._record_until_done(done, known)

    def _decide(self, items: list[In]) -> list[tuple[In, domain.Decision]]:
        with self.db.session() as s:
            decisions = domain.accept_batch(s, [i.event for i in items], optouts=self.optouts,
                                            carriers=self.carriers)
            # A redelivered event of a parked message: the redrive loop sends it, not this batch.
            parked = deferral.parked_ids(s, [d.plan.submission.message_id for d in decisions
                                             if d.plan is not None])
        for d in decisions:
            if d.plan is not None and d.plan.submission.message_id in parked:
                d.plan, d.duplicate = None, True
        return list(zip(items, decisions, strict=True))

    async def _send(self, plan: SendPlan) -> Result:
        sub = plan.submission
        connectors = [self.connectors[name] for name in plan.carriers]

        async def acquire(carrier: str) -> float:
            # carriers count segments; a paused carrier answers with its wait instead
            return await self.buckets[carrier].acquire(sub.segments, max_wait=IN_BATCH_MAX_WAIT_S)

        async def throttled(carrier: str, retry_after: float | None) -> None:
            self._trouble[carrier] = time.monotonic()
            await self.buckets[carrier].pause(retry_after if retry_after is not None
                                              else THROTTLE_PAUSE_S)

        async with self._slots:
            try:
                res = await submit_with_failover(
                    connectors, sub, max_attempts=self.settings.egress_max_attempts,
                    backoff_base=self.settings.egress_backoff_base_ms / 1000, acquire=acquire,
                    failover_after=FAILOVER_AFTER, max_wait=IN_BATCH_MAX_WAIT_S,
                    throttled=throttled)
                SUBMITS.labels(res.carrier, "sent").inc()
                return res
            except PermanentFailure as exc:
                SUBMITS.labels(exc.carrier, "refused").inc()
                return exc
            except RetryBudgetExhausted as exc:
                SUBMITS.labels(plan.carriers[0], "parked").inc()
                now = time.monotonic()
                self._trouble.update((c, now) for c in plan.carriers)
                return exc
            except Exception as exc:  # noqa: BLE001 - the batch's other sends must be recorded
                log.exception("egress: unexpected error sending %s", sub.message_id)
                SUBMITS.labels(plan.carriers[0], "error").inc()
                return Unexpected(exc)

    async def _record_until_done(self, done: list[tuple[In | None, SendPlan, Result]],
                                 known: dict[str, Any] | None = None) -> list[Out]:
        # Never raise from here: the messages are at the carriers, and a retried batch would
        # send them again.
        try:
            return await until_done(lambda: asyncio.to_thread(self._record, done, known),
                                    what="egress: recording send results")
        except Exception:  # noqa: BLE001 - isolate the message that cannot be recorded
            log.exception("egress: recording a batch failed; recording one message at a time")
            outs: list[Out] = []
            for one in done:
                try:
                    outs += await asyncio.to_thread(self._record, [one])
                except Exception:  # noqa: BLE001
                    log.exception("egress: could not record the result for %s",
                                  one[1].submission.message_id)
            return outs

    def _record(self, done: list[tuple[In | None, SendPlan, Result]],
                known: dict[str, Any] | None = None) -> list[Out]:
        outs: list[Out] = []
        with self.db.session() as s:
            sent = [(plan.submission.message_id, res) for _, plan, res in done
                    if isinstance(res, SubmitResult)]
            if sent:
                recorded = domain.record_sent_batch(s, sent, known=known)
                outs += [self._status(ev) for _, events in recorded for ev in events]
                outs += [self._status(ev) for ev in dlr.match_pending_many(s, [m for m, _ in recorded])]
                self._pull_forward(s, {res.carrier for _, res in sent})
            settled = [plan.submission.message_id for _, plan, res in done
                       if not isinstance(res, RetryBudgetExhausted)]
            deferral.release(s, settled)
            for item, plan, res in done:
                mid = plan.submission.message_id
                if isinstance(res, SubmitResult):
                    continue
                if isinstance(res, PermanentFailure):
                    events = domain.record_failed(s, mid, f"{res.carrier} refused: {res.reason}",
                                                  carrier=res.carrier)
                elif isinstance(res, RetryBudgetExhausted):
                    events = self._park(s, plan, res)
                else:
                    events = domain.record_failed(s, mid, res.reason)
                    if item is not None:
                        outs.append(self._dead_letter(item, res.reason, "processing_error"))
                outs += [self._status(ev) for ev in events]
        return outs

    def _pull_forward(self, s: Any, took: set[str]) -> None:
        """Carriers that took messages and have not pushed back for a while are back: what is
        parked for them goes now, not when its backoff (up to a minute) ends."""
        mono = time.monotonic()
        for carrier in took:
            if (mono - self._trouble.get(carrier, -1e9) < RECOVERED_AFTER_S
                    or mono - self._pulled.get(carrier, -1e9) < PULL_INTERVAL_S):
                continue
            self._pulled[carrier] = mono
            limit = max(REDRIVE_BATCH, int(self.carriers[carrier].rate_per_second * PULL_INTERVAL_S))
            n = deferral.pull_forward(s, carrier, time.time(), limit=limit)
            if n:
                log.info("egress: %s takes traffic again: %d parked message(s) due now", carrier, n)

    def _park(self, s: Any, plan: SendPlan, res: RetryBudgetExhausted) -> list[dict[str, Any]]:
        """Back-pressure: wait for the carriers, within the message's validity period."""
        now = datetime.now(UTC)
        mid = plan.submission.message_id
        known = deferral.deadline_of(s, mid)
        if known is not None:
            deadline, attempts = known
        else:
            deadline = plan.expires_at or now + timedelta(seconds=self.settings.egress_validity_s)
            attempts = 0
        attempts += res.attempts
        # Backoff grows with the tries so far (capped at a minute), at least what was asked.
        wait = max(res.retry_after, min(60.0, self.settings.egress_backoff_base_ms / 1000
                                        * 2 ** min(attempts, 10)))
        if now + timedelta(seconds=wait) > deadline:
            deferral.release(s, [mid])
            return domain.record_expired(
                s, mid, f"validity ended at {domain.iso(deadline)} while its carriers were "
                        f"unavailable: {res.reason}", now=now)
        deferral.park(s, self.box, plan, deadline=deadline, due_at=time.time() + wait,
                      reason=res.reason, attempts=attempts, now=now)
        log.info("egress: %s parked for %.1fs (%s)", mid, wait, res.reason[:200])
        return []

    # -- parked messages ----------------------------------------------------------------------
    def _claim(self) -> list[deferral.Parked]:
        with self.db.session() as s:
            return deferral.claim_due(s, self.box, time.time(), limit=REDRIVE_BATCH,
                                      lease_s=REDRIVE_LEASE_S)

    async def redrive(self) -> list[Out]:
        """Send the parked messages that are due; park again those still pushed back."""
        due = await asyncio.to_thread(self._claim)
        if not due:
            return []
        plans = [dataclasses.replace(p.plan, expires_at=p.deadline) for p in due]
        results = await bounded_map(self._send, plans, SEND_CONCURRENCY)
        return await self._record_until_done(
            [(None, plan, res) for plan, res in zip(plans, results, strict=True)])

    def _dead_letter(self, item: In, reason: str, kind: str) -> Out:
        """The outbound event itself, kept for an operator to inspect and replay."""
        rec = dlq_record(original_topic=self.settings.topic(SMS_OUTBOUND), partition=item.partition,
                         offset=item.offset, key=item.key,
                         value=item.raw if item.raw is not None else encode(SMS_OUTBOUND, item.event),
                         reason=reason, error_type=kind, processor=self.p.name,
                         tenant_id=item.event.get("tenant_id"))
        metrics.DLQ.labels(self.p.name, SMS_OUTBOUND, kind).inc()
        log.warning("egress: %s to %s.dlq (%s): %s", item.event["message_id"], SMS_OUTBOUND, kind,
                    reason[:300])
        return Out(dlq_name(SMS_OUTBOUND), rec["key"], rec)

    @staticmethod
    def _status(ev: dict[str, Any]) -> Out:
        return Out(SMS_STATUS, ev["message_id"], ev)

    # -- sms.delivery -------------------------------------------------------------------------
    def on_delivery(self, items: list[In]) -> list[Out]:
        with self.db.session() as s:
            return [self._status(ev) for ev in dlr.handle_deliveries(s, [i.event for i in items])]

    # -- housekeeping -------------------------------------------------------------------------
    def sweep(self) -> list[Out]:
        """Match pending reports whose message got its carrier id in a transaction that raced
        theirs, and purge those nobody claimed within the window."""
        with self.db.session() as s:
            outs = [self._status(ev) for ev in dlr.match_stragglers(s)]
        window = self.settings.dlr_match_window_s
        if time.monotonic() - self._last_purge >= min(60.0, window / 2):
            self._last_purge = time.monotonic()
            with self.db.session() as s:
                dlr.purge_pending(s, window)
        return outs

    async def start_binds(self) -> None:
        """Connection-based connectors (SMPP) bind and start taking MO and receipts."""
        sink = BindInbound(self.p)
        for c in self.connectors.values():
            if getattr(c, "connection_based", False):
                await c.start(sink)  # type: ignore[attr-defined]

    async def health(self, base: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """The processor's health (``base``), with each connection-based carrier's binds."""
        status = await base()
        binds = {n: c.health() for n, c in self.connectors.items() if hasattr(c, "health")}
        if binds:
            status["checks"]["carriers"] = {"ok": any(b["ok"] for b in binds.values()), **binds}
            if not status["checks"]["carriers"]["ok"]:
                status["status"] = "degraded"
        return status

    async def close(self) -> None:
        for c in self.connectors.values():
            try:
                await c.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                log.exception("egress: closing connector %s", getattr(c, "name", c))
        for b in self.buckets.values():
            try:
                await b.close()
            except Exception:  # noqa: BLE001
                log.exception("egress: returning tokens of %s", b.carrier)


class BindInbound:
    """What arrives on SMPP binds, published like ingress publishes webhooks: the connector
    answers the SMSC only after ``publish`` returned (the broker acknowledged)."""

    def __init__(self, p: Processor) -> None:
        assert p.db is not None
        self.p, self.db = p, p.db

    async def publish(self, topic: str, key: str, event: dict[str, Any]) -> None:
        await self.p.send([Out(topic, key, event)])

    def _collect(self, *args: Any) -> list[str] | None:
        with self.db.session() as s:
            return smpp_parts.collect_part(s, *args)

    async def collect_part(self, carrier: str, sender: str, ref: str, seq: int, total: int,
                           text: str) -> list[str] | None:
        return await asyncio.to_thread(self._collect, carrier, sender, ref, seq, total, text)

    def _drop(self, carrier: str, sender: str, ref: str) -> None:
        with self.db.session() as s:
            smpp_parts.drop_parts(s, carrier, sender, ref)

    async def drop_parts(self, carrier: str, sender: str, ref: str) -> None:
        await asyncio.to_thread(self._drop, carrier, sender, ref)


def build_dependencies(p: Processor) -> Egress:
    s = p.settings
    try:
        carriers = load_carriers(s.carriers_file)
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"egress: cannot load carriers from {s.carriers_file}: {exc}") from None
    if not carriers:
        raise SystemExit(f"egress: {s.carriers_file} declares no carriers")
    try:
        connectors = {name: build_connector(c) for name, c in carriers.items()}
    except ValueError as exc:
        raise SystemExit(f"egress: {exc}") from None
    assert p.db is not None
    buckets = {name: SharedTokenBucket(p.db, name, c.rate_per_second) for name, c in carriers.items()}
    optouts = OptOutView(s, p.db)
    return Egress(p, carriers, connectors, buckets, optouts)


def build() -> Processor:
    p = Processor("egress", core="librdkafka")
    egress = build_dependencies(p)

    def start_optouts() -> None:
        # Before the consumers start: no send before the opt-outs are known.
        try:
            egress.optouts.start(OPTOUTS_START_TIMEOUT_S)
        except RuntimeError as exc:
            raise SystemExit(f"egress: {exc}") from None

    async def stop_dependencies() -> None:
        await egress.close()
        egress.optouts.stop()

    p.on_start(start_optouts)
    p.on_stop(stop_dependencies)

    async def sweep_dlrs() -> None:
        outs = await asyncio.to_thread(egress.sweep)
        if outs:
            await p.send(outs)

    async def redrive_parked() -> None:
        # On failure the rows stay parked; their lease lets them be claimed again.
        outs = await egress.redrive()
        if outs:
            await p.send(outs)

    # Once running: what arrives on a bind is published through the processor's producer.
    p.on_running(egress.start_binds)

    base_health = p.health.status

    async def health_with_binds() -> dict[str, Any]:
        return await egress.health(base_health)

    p.health.status = health_with_binds  # type: ignore[method-assign]  # binds in /health

    p.every(SWEEP_INTERVAL_S, sweep_dlrs, name="egress.sweep_dlrs")
    p.every(REDRIVE_INTERVAL_S, redrive_parked, name="egress.redrive_parked")

    p.consume(SMS_OUTBOUND, egress.on_outbound, in_flight=OVERLAP)
    p.consume(SMS_DELIVERY, egress.on_delivery, in_flight=OVERLAP)
    return p
