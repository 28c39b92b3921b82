"""The metrics processor as a process over the real broker: a scripted load (with duplicates, and
the processor killed and restarted half way) gives exactly the expected totals on metrics.minute
and metrics.hour; and the lag from an event to its metric is measured."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from confluent_kafka import Producer
from sqlalchemy import func, select

from services.core.db import Database
from services.core.db.models import ProcessedEvent
from services.core.schemas import encode, new_event
from services.core.tenancy import add_number, create_tenant
from tests.support.infra import read_topic, wait_until

pytestmark = pytest.mark.integration

DIMS = ("tenant_id", "carrier", "campaign_id", "product", "region")


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def scripted_load(m: datetime) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]], dict]:
    """(first half, second half, expected totals by dimensions) for events in the minute ``m``."""
    at = lambda s: iso(m + timedelta(seconds=s))  # noqa: E731
    ev: list[tuple[str, dict]] = []

    def add(topic: str, event_type: str, tenant: str | None, when: float, **f) -> dict:
        e = new_event(event_type, tenant, **f)
        e["produced_at"] = at(when)
        ev.append((topic, e))
        return e

    def inbound(to: str, s: float) -> dict:
        return add("sms.inbound", "sms.inbound", None, s, message_id=str(uuid.uuid4()), carrier="sim",
                   carrier_message_id=uuid.uuid4().hex[:10], to=to, text="hello", received_at=at(s),
                   **{"from": "+8613800009999"})
    first = [inbound("10690001", i) for i in range(1, 6)]
    ev.append(("sms.inbound", first[0]))  # the same MO published twice (a carrier retry)
    for i in range(2):
        inbound("10690002", 6 + i)
    inbound("10699999", 8)  # nobody's number

    mids = [str(uuid.uuid4()) for _ in range(4)]

    def outbound(mid: str, s: float, **f) -> dict:
        return add("sms.outbound", "sms.outbound", "acme", s, message_id=mid, request_id=mid[:12],
                   to="+8613900000001", text="x", source=f.pop("source", "api"), accepted_at=at(s), **f)
    for i, mid in enumerate(mids[:3]):
        outbound(mid, 1 + i, campaign_id="spring", attributes={"product": "red-box"})
    outbound(mids[3], 4)
    for to, kind in (("+8613800000001", "genuine"), ("+8613800000002", "repeat"),
                     ("+447700900123", "counterfeit"), ("+447700900123", "mistyped")):
        add("sms.outbound", "sms.outbound", "acme", 9, message_id=str(uuid.uuid4()), request_id="v",
            to=to, text="x", source="verifier", accepted_at=at(9), attributes={"kind": kind})

    def st(mid: str, status: str, s: float) -> dict:
        return add("sms.status", "sms.status", "acme", s, message_id=mid, to="+8613900000001",
                   status=status, occurred_at=at(s), carrier="sim" if status != "suppressed" else None)
    st(mids[0], "accepted", 1)
    st(mids[0], "sent", 2)
    st(mids[0], "delivered", 3)  # 2 s after its request
    st(mids[1], "sent", 3)
    st(mids[1], "failed", 5)
    st(mids[2], "sent", 4)
    st(mids[2], "delivered", 43)  # 40 s
    st(mids[3], "suppressed", 5)
    ev.append(ev[-2])  # a status announced twice

    for sender in ("+8613800000011", "+8613800000012", "+8613800000013", "+447700900999"):
        add("codes.submitted", "codes.submitted", "acme", 10, submission_id=str(uuid.uuid4()),
            code="7F3KQ9XZ", to="10690001", inbound_message_id=str(uuid.uuid4()), received_at=at(10),
            **{"from": sender})
    award = add("points.awarded", "points.awarded", "acme", 11, entry_id=str(uuid.uuid4()),
                member="+8613800000011", points=10, reason="first valid query",
                source_event_id=str(uuid.uuid4()), product="red-box")
    ev.append(("points.awarded", award))  # redelivered by its producer
    add("points.awarded", "points.awarded", "acme", 12, entry_id=str(uuid.uuid4()),
        member="+8613800000012", points=5, reason="first valid query",
        source_event_id=str(uuid.uuid4()), product="red-box")
    for kind in ("gift_redeemed", "gift_insufficient"):  # the ledger's answers to GIFT 1
        add("sms.outbound", "sms.outbound", "acme", 13, message_id=str(uuid.uuid4()), request_id="g",
            to="+8613800000011", text="x", source="ledger", accepted_at=at(13),
            attributes={"kind": kind})

    expected = {
        ("acme", "sim", "", "", ""): {"messages_in": 5},
        ("beta", "sim", "", "", ""): {"messages_in": 2},
        ("", "sim", "", "", ""): {"messages_in": 1},
        ("acme", "", "spring", "red-box", ""): {"messages_out": 3},
        ("acme", "", "", "", ""): {"messages_out": 7, "suppressed": 1, "redemptions": 1},
        ("acme", "", "", "", "CN"): {"genuine": 1, "counterfeit_warnings": 1, "verifications": 3},
        ("acme", "", "", "", "GB"): {"counterfeit_warnings": 1, "verifications": 1},
        ("acme", "sim", "spring", "red-box", ""): {"sent": 3, "delivered": 2, "failed": 1},
        ("acme", "", "", "red-box", ""): {"points_awarded": 15, "points_awards": 2},
    }
    half = len(ev) // 2
    return ev[:half], ev[half:], expected


def produce(stack, events: list[tuple[str, dict]]) -> None:
    p = Producer({"bootstrap.servers": stack.bootstrap})
    for topic, e in events:
        key = e.get("message_id") or e.get("submission_id") or e.get("member")
        p.produce(stack.topic(topic), encode(topic, e), key=key.encode())
    assert p.flush(10) == 0


def latest(records: list[dict], granularity: str, start: str) -> dict[tuple, dict]:
    """The current (highest revision) record of each dimension set in one window."""
    best: dict[tuple, dict] = {}
    for r in records:
        if r["granularity"] != granularity or r["window_start"] != start:
            continue
        key = tuple(r["dimensions"][d] for d in DIMS)
        if key not in best or r["revision"] > best[key]["revision"]:
            best[key] = r
    return best


def nonzero(record: dict) -> dict[str, int]:
    return {k: v for k, v in record["counts"].items() if v}


def totals(records: list[dict], granularity: str, start: str) -> dict[tuple, dict[str, int]]:
    """Current non-zero counts by dimensions (a status counted before its request was seen is
    moved to its campaign later, leaving a republished all-zero record behind)."""
    return {k: c for k, r in latest(records, granularity, start).items() if (c := nonzero(r))}


def test_a_scripted_load_gives_exact_window_totals_despite_duplicates_and_a_crash(stack):
    db = Database(stack.database_url)
    with db.session() as s:
        create_tenant(s, "acme", "Acme")
        add_number(s, "acme", "10690001")
        create_tenant(s, "beta", "Beta")
        add_number(s, "beta", "10690002")
    # A minute of the previous hour, so that its hour has ended too and is published.
    m = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(minutes=30)
    first, second, expected = scripted_load(m)
    proc = stack.start("services.metrics")
    produce(stack, first)

    def counted() -> int:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(ProcessedEvent)
                            .where(ProcessedEvent.processor == "metrics"))
    # Kill it as soon as it has counted (some of) the first half: its offsets may not be
    # committed yet, so it will see those events again.
    wait_until(lambda: counted() > 0, 60, 0.02, "first events counted")
    proc.kill()
    produce(stack, second)
    stack.start("services.metrics")

    recs = read_topic(stack.bootstrap, stack.topic("metrics.minute"), timeout=90,
                      until=lambda rs: totals(rs, "minute", iso(m)) == expected)
    minute = latest(recs, "minute", iso(m))
    assert totals(recs, "minute", iso(m)) == expected
    lat = minute[("acme", "sim", "spring", "red-box", "")]["delivery_latency"]
    assert lat == {"count": 2, "sum_ms": 42000.0, "le_1s": 0, "le_5s": 1, "le_30s": 1, "le_60s": 2,
                   "le_300s": 2}
    hour_start = iso(m.replace(minute=0))
    hours = read_topic(stack.bootstrap, stack.topic("metrics.hour"),
                       until=lambda rs: totals(rs, "hour", hour_start) == expected, timeout=60)
    assert all(r["window_end"] == iso(m.replace(minute=0) + timedelta(hours=1))
               for r in latest(hours, "hour", hour_start).values())
    db.dispose()


def prom_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_lag_from_an_event_to_its_metric_is_measured(stack, record_property):
    db = Database(stack.database_url)
    with db.session() as s:
        create_tenant(s, "acme", "Acme")
        add_number(s, "acme", "10690001")
    db.dispose()
    proc = stack.start("services.metrics")  # default grace (5 s) and flush interval (1 s)
    samples = []
    for i in range(2):  # each waits for its minute to end: about a minute apiece
        now = datetime.now(UTC)
        e = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="sim",
                      carrier_message_id=f"lag-{i}", to="10690001", text="hi", received_at=iso(now),
                      **{"from": "+8613800000001"})
        before = prom_value(httpx.get(f"{proc.url}/metrics").text, "herald_stream_messages_in_total",
                            tenant_id="acme")
        t0 = time.time()
        produce(stack, [("sms.inbound", e)])
        wait_until(lambda before=before: prom_value(httpx.get(f"{proc.url}/metrics").text,
                                                    "herald_stream_messages_in_total",
                                                    tenant_id="acme") > before, 30, 0.01, "counted")
        t_counted = time.time()
        start = iso(now.replace(second=0, microsecond=0))
        recs = read_topic(stack.bootstrap, stack.topic("metrics.minute"), timeout=90,
                          until=lambda rs, start=start: any(r["window_start"] == start for r in rs))
        t_published = time.time()
        rec = next(r for r in recs if r["window_start"] == start)
        window_end = datetime.fromisoformat(rec["window_end"].replace("Z", "+00:00")).timestamp()
        emitted = datetime.fromisoformat(rec["emitted_at"].replace("Z", "+00:00")).timestamp()
        samples.append({"event_to_counted_s": round(t_counted - t0, 3),
                        "event_to_published_s": round(t_published - t0, 3),
                        "window_end_to_published_s": round(emitted - window_end, 3)})
    print("metric lag samples:", json.dumps(samples))
    record_property("metric_lag", json.dumps(samples))
    text = httpx.get(f"{proc.url}/metrics").text
    m = re.search(r"herald_metrics_event_lag_seconds_count (\S+)", text)
    assert m and float(m.group(1)) >= 2
    for s in samples:
        assert s["event_to_counted_s"] < 5
        # A window is published after it ends plus the 5 s grace, within a flush interval or two.
        assert 5 <= s["window_end_to_published_s"] < 9
