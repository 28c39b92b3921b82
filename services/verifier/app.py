"""The verifier processor: ``codes.submitted`` in; replies (``sms.outbound``) and points
(``points.awarded``) out.

Each batch is one database transaction; its events are produced only after it committed, and
the offsets are committed only after the broker acknowledged them (services.core.processor).
``CRASH_AFTER_BATCHES`` (services.core.faults) is the crash-and-redelivery tests' fault hook.
"""

from __future__ import annotations

from prometheus_client import Counter

from services.core import topics
from services.core.faults import CRASH_AFTER_BATCHES, CrashAfterBatches  # noqa: F401 - the e2e test names it here
from services.core.processor import In, Out, Processor
from services.core.rdkafka_core import OVERLAP
from services.core.settings import Settings

from .domain import Verifier

OUTCOMES = Counter("herald_verifier_outcomes_total", "Code submissions by outcome", ["outcome"])


def build(settings: Settings | None = None) -> Processor:
    p = Processor("verifier", settings=settings, core="librdkafka")
    verifier = Verifier(p.settings.secret_key,
                        on_outcome=lambda _tenant, outcome: OUTCOMES.labels(outcome).inc())
    crash = CrashAfterBatches()  # the crash-and-redelivery tests' fault hook

    def handle(items: list[In]) -> list[Out]:
        with p.db.session() as s:
            outs = verifier.handle(s, [i.event for i in items])
        crash.batch_committed()
        return outs

    p.consume(topics.CODES_SUBMITTED, handle, in_flight=OVERLAP)
    return p
