"""Prometheus metrics shared by every processor (each process exposes its own /metrics)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

EVENTS_IN = Counter("herald_events_consumed_total", "Events consumed", ["processor", "topic"])
EVENTS_OUT = Counter("herald_events_produced_total", "Events produced", ["processor", "topic"])
DLQ = Counter("herald_dlq_total", "Events sent to a DLQ", ["processor", "topic", "error_type"])
BATCH_SECONDS = Histogram(
    "herald_batch_seconds", "Time to handle one batch of events", ["processor"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNMATCHED = Counter("herald_router_unmatched_texts_total",
                    "Inbound texts no routing rule matched, by tenant ('' on a shared number) and "
                    "what they got (reply, inbox, shared_number_reply)", ["tenant", "outcome"])
HTTP_REQUESTS = Counter("herald_http_requests_total", "HTTP requests", ["processor", "route", "code"])


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
