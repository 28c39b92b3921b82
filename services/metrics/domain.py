"""Streamed metrics: the pipeline's events counted into tumbling windows (a minute and an hour)
per tenant, carrier, campaign, product and region. No Kafka here.

Counting is exact under redelivery: each event has a dedupe key (its message, submission or
ledger entry, not its envelope id, so a producer that publishes the same thing twice counts
once) recorded in ``processed_events`` in the same transaction as the window totals it adds to.
Windows are assigned by the event's own time (when it happened), so a replay of old events lands
in the windows they belong to. A window is published once it has ended plus a grace period;
an event for it that comes later updates the totals and the window is published again with a
higher revision (analysts keep the highest).

What each topic counts (and at which of its times):
- sms.inbound: ``messages_in`` at ``received_at``; tenant by the number texted (if one tenant
  owns it), carrier.
- sms.outbound: ``messages_out`` at ``accepted_at``; campaign, product (``attributes.product``).
  The verifier's replies (``source`` verifier) also count ``genuine`` or ``counterfeit_warnings``
  by their ``attributes.kind`` (see ``GENUINE_KINDS``/``WARNING_KINDS``), by region of the buyer.
- sms.status: ``sent``, ``delivered``, ``failed``, ``suppressed``, ``expired`` at ``occurred_at``;
  carrier; campaign and product of the message; delivery latency from its acceptance. The request
  and its statuses come on different topics, so a status can be counted before its request was
  seen: it is then counted without campaign and product, kept in ``metric_pending``, and moved
  to them (``attribute_pending``) once the request has been seen, republishing both windows.
- codes.submitted: ``verifications`` at ``received_at``, by region of the querying number.
- points.awarded: ``points_awarded`` (points) and ``points_awards`` at ``produced_at``; product.
- The ledger's confirmations of a redeemed gift (sms.outbound, ``source`` ledger, ``attributes.kind``
  ``gift_redeemed``) count ``redemptions`` (the points a redemption cost are on no topic).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.core import topics
from services.core.db.bridge_models import METRIC_FIELDS, MetricMessage, MetricPending, MetricWindow
from services.core.db.models import Message, ProcessedEvent, SenderNumber
from services.core.ids import stable_uuid
from services.core.messages import parse_ts
from services.core.schemas import new_event
from services.core.utc import aware as _aware

PROCESSOR = "metrics"
GRANULARITIES = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
DIMENSIONS = ("tenant_id", "carrier", "campaign_id", "product", "region")
LATENCY_BUCKETS = ((1, "latency_le_1s"), (5, "latency_le_5s"), (30, "latency_le_30s"),
                   (60, "latency_le_60s"), (300, "latency_le_300s"))
STATUS_FIELDS = {"sent", "delivered", "failed", "suppressed", "expired"}
# How the verifier's replies are told apart: attributes.kind is the query's outcome
# (services/verifier: genuine, repeat, counterfeit (unknown code), mistyped, locked). A repeated
# or unknown code is a possible counterfeit; a typo or a lockout is neither verdict.
GENUINE_KINDS = frozenset({"genuine"})
WARNING_KINDS = frozenset({"repeat", "counterfeit"})
REDEEMED_KIND = "gift_redeemed"  # services/ledger's reply to a successful GIFT <n>

# Country calling codes: the default regions when no prefix table is configured.
COUNTRY_CODES = {
    "1": "NANP", "7": "RU/KZ", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE", "33": "FR",
    "34": "ES", "36": "HU", "39": "IT", "40": "RO", "41": "CH", "43": "AT", "44": "GB", "45": "DK",
    "46": "SE", "47": "NO", "48": "PL", "49": "DE", "51": "PE", "52": "MX", "54": "AR", "55": "BR",
    "56": "CL", "57": "CO", "60": "MY", "61": "AU", "62": "ID", "63": "PH", "64": "NZ", "65": "SG",
    "66": "TH", "81": "JP", "82": "KR", "84": "VN", "86": "CN", "90": "TR", "91": "IN", "92": "PK",
    "234": "NG", "254": "KE", "351": "PT", "353": "IE", "358": "FI", "380": "UA", "852": "HK",
    "853": "MO", "855": "KH", "880": "BD", "886": "TW", "966": "SA", "971": "AE", "972": "IL",
}
_NS = uuid.UUID("6f1d2b3c-4a5e-4f70-8b9c-0d1e2f3a4b5c")


class Regions:
    """The region of a number by its longest matching prefix ('+86138...' -> a province, say)."""

    def __init__(self, prefixes: dict[str, str] | None = None) -> None:
        table = prefixes if prefixes is not None else {f"+{cc}": r for cc, r in COUNTRY_CODES.items()}
        self.table = {k if k.startswith("+") else f"+{k}": v for k, v in table.items()}
        self._lengths = sorted({len(k) for k in self.table}, reverse=True)

    @classmethod
    def from_file(cls, path: str) -> Regions:
        if not path:
            return cls()
        p = Path(path)
        if not p.is_absolute():
            p = Path(__file__).resolve().parents[2] / p
        return cls(json.loads(p.read_text(encoding="utf-8")))

    def of(self, number: str | None) -> str:
        if not number or not number.startswith("+"):
            return "other"
        for n in self._lengths:
            region = self.table.get(number[:n])
            if region is not None:
                return region
        return "other"


@dataclass(frozen=True)
class Dims:
    tenant_id: str = ""
    carrier: str = ""
    campaign_id: str = ""
    product: str = ""
    region: str = ""

    def key(self) -> str:
        return "|".join(getattr(self, d) for d in DIMENSIONS)


@dataclass
class Increment:
    """What one event adds: to which dimensions, at what time."""

    dedupe: str
    at: datetime
    dims: Dims
    deltas: dict[str, float] = field(default_factory=dict)
    lag_from: datetime | None = None  # when the event was produced (for the lag metric)
    message_id: str | None = None  # set on a status whose request is not known yet (pending)


def window_of(at: datetime, granularity: str) -> tuple[datetime, datetime]:
    at = at.astimezone(UTC)
    if granularity == "minute":
        start = at.replace(second=0, microsecond=0)
    else:
        start = at.replace(minute=0, second=0, microsecond=0)
    return start, start + GRANULARITIES[granularity]


def _s(v: Any, n: int = 64) -> str:
    return str(v)[:n] if v else ""


class Counter:
    """Turns events into increments (reading what it needs from the database)."""

    def __init__(self, regions: Regions | None = None) -> None:
        self.regions = regions or Regions()
        self._owners: dict[str, str] = {}

    def _owner(self, s: Session, number: str) -> str:
        if number not in self._owners:
            rows = s.execute(select(SenderNumber.tenant_id, SenderNumber.shared)
                             .where(SenderNumber.number == number)).all()
            self._owners[number] = rows[0][0] if len(rows) == 1 and not rows[0][1] else ""
            if len(self._owners) > 10_000:
                self._owners.clear()
        return self._owners[number]

    def count(self, s: Session, topic: str, e: dict[str, Any]) -> list[Increment]:
        produced = parse_ts(e.get("produced_at"))
        if topic == topics.SMS_INBOUND:
            return [Increment(f"in:{e['message_id']}", parse_ts(e["received_at"]),
                              Dims(e.get("tenant_id") or self._owner(s, e["to"]), _s(e.get("carrier"))),
                              {"messages_in": 1}, produced)]
        if topic == topics.SMS_OUTBOUND:
            return self._outbound(s, e, produced)
        if topic == topics.SMS_STATUS:
            return self._status(s, e, produced)
        if topic == topics.CODES_SUBMITTED:
            return [Increment(f"code:{e['submission_id']}", parse_ts(e["received_at"]),
                              Dims(e["tenant_id"], region=self.regions.of(e["from"])),
                              {"verifications": 1}, produced)]
        if topic == topics.POINTS_AWARDED:
            return [Increment(f"pts:{e['entry_id']}", produced,
                              Dims(e["tenant_id"], product=_s(e.get("product"))),
                              {"points_awarded": e["points"], "points_awards": 1}, produced)]
        return []

    def _outbound(self, s: Session, e: dict[str, Any], produced: datetime) -> list[Increment]:
        attrs = e.get("attributes") or {}
        at = parse_ts(e["accepted_at"]).astimezone(UTC)
        campaign, product = _s(e.get("campaign_id")), _s(attrs.get("product"))
        if s.get(MetricMessage, e["message_id"]) is None:
            s.add(MetricMessage(message_id=e["message_id"], tenant_id=e["tenant_id"],
                                campaign_id=campaign, product=product, accepted_at=at))
        out = [Increment(f"out:{e['message_id']}", at,
                         Dims(e["tenant_id"], campaign_id=campaign, product=product),
                         {"messages_out": 1}, produced)]
        kind = attrs.get("kind", "")
        if e.get("source") == "verifier" and (kind in GENUINE_KINDS or kind in WARNING_KINDS):
            verdict = "genuine" if kind in GENUINE_KINDS else "counterfeit_warnings"
            out.append(Increment(f"verdict:{e['message_id']}", at,
                                 Dims(e["tenant_id"], product=product, region=self.regions.of(e["to"])),
                                 {verdict: 1}, produced))
        if e.get("source") == "ledger" and kind == REDEEMED_KIND:
            out.append(Increment(f"redeemed:{e['message_id']}", at, Dims(e["tenant_id"], product=product),
                                 {"redemptions": 1}, produced))
        return out

    def _status(self, s: Session, e: dict[str, Any], produced: datetime) -> list[Increment]:
        status = e["status"]
        if status not in STATUS_FIELDS:
            return []
        at = parse_ts(e["occurred_at"])
        known = s.get(MetricMessage, e["message_id"])
        dims = Dims(e["tenant_id"], _s(e.get("carrier")), known.campaign_id if known else "",
                    known.product if known else "")
        deltas: dict[str, float] = {status: 1}
        if status == "delivered":
            # Egress records the message (system of record) before it emits any status of it.
            accepted = known.accepted_at if known else s.scalar(
                select(Message.accepted_at).where(Message.id == e["message_id"]))
            if accepted is not None:
                deltas.update(latency(at, accepted))
        return [Increment(f"st:{e['message_id']}:{status}", at, dims, deltas, produced,
                          None if known else e["message_id"])]


def latency(delivered_at: datetime, accepted_at: datetime) -> dict[str, float]:
    """The latency counters of one delivery (buckets are cumulative, like Prometheus's)."""
    seconds = max(0.0, (_aware(delivered_at) - _aware(accepted_at)).total_seconds())
    out = {"latency_count": 1.0, "latency_sum_ms": round(seconds * 1000, 3)}
    out.update({name: 1.0 for limit, name in LATENCY_BUCKETS if seconds <= limit})
    return out


def fresh(s: Session, increments: Iterable[Increment]) -> list[Increment]:
    """The increments not counted before; marks them counted (in the caller's transaction)."""
    incs = list(increments)
    keys = {i.dedupe for i in incs}
    if not keys:
        return []
    seen = set(s.scalars(select(ProcessedEvent.event_id).where(
        ProcessedEvent.processor == PROCESSOR, ProcessedEvent.event_id.in_(keys))))
    out, batch = [], set()
    for i in incs:
        if i.dedupe in seen or i.dedupe in batch:
            continue
        # Two increments of one event (an outbound and its verdict) have different keys.
        batch.add(i.dedupe)
        out.append(i)
    for k in sorted(batch):
        s.add(ProcessedEvent(processor=PROCESSOR, event_id=k))
    for i in out:
        if i.message_id is not None:
            s.add(MetricPending(dedupe=i.dedupe, message_id=i.message_id, at=i.at.astimezone(UTC),
                                tenant_id=i.dims.tenant_id, carrier=i.dims.carrier,
                                deltas=json.dumps(i.deltas)))
    s.flush()
    return out


def attribute_pending(s: Session, limit: int = 500) -> list[Increment]:
    """Move statuses counted without their campaign and product to them, now that their
    requests have been seen: minus on the unattributed dimensions, plus on the attributed ones,
    in the status's own windows. Returns the (fresh) increments applied."""
    rows = s.execute(select(MetricPending, MetricMessage)
                     .join(MetricMessage, MetricMessage.message_id == MetricPending.message_id)
                     .order_by(MetricPending.dedupe).limit(limit)).all()
    moves: list[Increment] = []
    for p, m in rows:
        deltas, at = json.loads(p.deltas), _aware(p.at)
        # A delivery whose acceptance time was unknown too gets its latency now.
        extra = latency(at, m.accepted_at) if "delivered" in deltas and "latency_count" not in deltas \
            else {}
        if m.campaign_id or m.product:
            moves.append(Increment(f"mv-:{p.dedupe}", at, Dims(p.tenant_id, p.carrier),
                                   {k: -v for k, v in deltas.items()}))
            moves.append(Increment(f"mv+:{p.dedupe}", at,
                                   Dims(p.tenant_id, p.carrier, m.campaign_id, m.product),
                                   {**deltas, **extra}))
        elif extra:
            moves.append(Increment(f"lat:{p.dedupe}", at, Dims(p.tenant_id, p.carrier), extra))
        s.delete(p)
    new = fresh(s, moves)
    apply(s, new)
    return new


def apply(s: Session, increments: Iterable[Increment], now: datetime | None = None) -> int:
    """Add the increments to their minute and hour windows (upserts, in a fixed order so that
    two workers never deadlock on the same rows). Returns the number of window rows touched."""
    now = now or datetime.now(UTC)
    sums: dict[tuple[str, datetime, Dims], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for inc in increments:
        for g in GRANULARITIES:
            start, _ = window_of(inc.at, g)
            acc = sums[(g, start, inc.dims)]
            for k, v in inc.deltas.items():
                acc[k] += v
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = MetricWindow.__table__
    for (g, start, dims), deltas in sorted(sums.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                         kv[0][2].key())):
        row = {f: 0 for f in METRIC_FIELDS} | dict(deltas)
        stmt = insert(table).values(granularity=g, window_start=start,
                                    window_end=start + GRANULARITIES[g],
                                    **{d: getattr(dims, d) for d in DIMENSIONS}, **row,
                                    revision=1, emitted_revision=0, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["granularity", "window_start", *DIMENSIONS],
            set_={**{k: table.c[k] + stmt.excluded[k] for k in deltas},
                  "revision": table.c.revision + 1, "updated_at": now})
        s.execute(stmt)
    return len(sums)


def due(s: Session, now: datetime, grace_s: float, limit: int = 500) -> list[MetricWindow]:
    """Windows that have ended (plus grace) and changed since they were last published."""
    return list(s.scalars(select(MetricWindow).where(
        MetricWindow.window_end <= now - timedelta(seconds=grace_s),
        MetricWindow.emitted_revision < MetricWindow.revision)
        .order_by(MetricWindow.window_end, MetricWindow.id).limit(limit)))


def mark_published(s: Session, published: Iterable[tuple[int, int]]) -> None:
    for row_id, revision in published:
        s.execute(update(MetricWindow).where(and_(MetricWindow.id == row_id,
                                                  MetricWindow.emitted_revision < revision))
                  .values(emitted_revision=revision).execution_options(synchronize_session=False))


def _iso(ts: datetime) -> str:
    return _aware(ts).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def window_event(w: MetricWindow, now: datetime | None = None) -> tuple[str, str, dict[str, Any]]:
    """(topic, key, metrics.window event) for a window row."""
    now = now or datetime.now(UTC)
    dims = {d: getattr(w, d) for d in DIMENSIONS}
    key = "|".join(dims.values())
    counts = {f: int(getattr(w, f)) for f in METRIC_FIELDS if not f.startswith("latency_")}
    latency = {"count": int(w.latency_count), "sum_ms": float(w.latency_sum_ms),
               **{name.removeprefix("latency_"): int(getattr(w, name)) for _, name in LATENCY_BUCKETS}}
    event = new_event("metrics.window", w.tenant_id or None, granularity=w.granularity,
                      window_start=_iso(w.window_start), window_end=_iso(w.window_end),
                      dimensions=dims, counts=counts, delivery_latency=latency,
                      revision=int(w.revision), emitted_at=_iso(now))
    event["event_id"] = stable_uuid(_NS, f"{w.granularity}|{_iso(w.window_start)}|{key}|{w.revision}")
    topic = topics.METRICS_MINUTE if w.granularity == "minute" else topics.METRICS_HOUR
    return topic, key, event


def prune(s: Session, now: datetime, keep_days: int = 7) -> None:
    """Dedupe keys and message facts older than any redelivery or late status could be."""
    cutoff = now - timedelta(days=keep_days)
    s.execute(delete(ProcessedEvent).where(ProcessedEvent.processor == PROCESSOR,
                                           ProcessedEvent.processed_at < cutoff))
    s.execute(delete(MetricMessage).where(MetricMessage.recorded_at < cutoff))
    s.execute(delete(MetricPending).where(MetricPending.recorded_at < cutoff))
