"""The verifier processor: ``codes.submitted`` in; replies (``sms.outbound``) and points
(``points.awarded``) out.

Each batch is one database transaction; its events are produced only after it committed, and
the offsets are committed only after the broker acknowledged them (services.core.processor).
"""

from __future__ import annotations

import os

from prometheus_client import Counter

from services.core import topics
from services.core.processor import In, Out, Processor
from services.core.settings import Settings

from .domain import Verifier

OUTCOMES = Counter("herald_verifier_outcomes_total", "Code submissions by outcome", ["outcome"])

# Fault injection for the end-to-end test: after this many committed batches the process dies
# before producing their replies or committing their offsets, i.e. exactly in the window a
# redelivery must cover. Unset in any real deployment.
CRASH_AFTER_BATCHES = "HERALD_FAULT_EXIT_AFTER_COMMITTED_BATCHES"


def build(settings: Settings | None = None) -> Processor:
    p = Processor("verifier", settings=settings)
    verifier = Verifier(p.settings.secret_key,
                        on_outcome=lambda _tenant, outcome: OUTCOMES.labels(outcome).inc())
    crash_after = int(os.environ.get(CRASH_AFTER_BATCHES, "0") or 0)
    committed = 0

    def handle(items: list[In]) -> list[Out]:
        nonlocal committed
        with p.db.session() as s:
            outs = verifier.handle(s, [i.event for i in items])
        committed += 1
        if crash_after and committed >= crash_after:
            os._exit(70)
        return outs

    p.consume(topics.CODES_SUBMITTED, handle)
    return p
