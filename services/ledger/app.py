"""The ledger processor: ``points.awarded`` and ``points.commands`` in; member replies
(``sms.outbound``) out.

Each batch is one database transaction; its replies are produced only after it committed, and
the offsets are committed only after the broker acknowledged them (services.core.processor).
``CRASH_AFTER_BATCHES`` (services.core.faults) is the crash-and-redelivery tests' fault hook.
"""

from __future__ import annotations

from prometheus_client import Counter

from services.core import topics
from services.core.faults import CrashAfterBatches
from services.core.processor import In, Out, Processor
from services.core.rdkafka_core import OVERLAP
from services.core.settings import Settings

from .domain import Ledger

REDELIVERED = Counter("herald_ledger_redelivered_total", "Awards and redemptions seen before (no effect)",
                      ["kind"])


def build(settings: Settings | None = None) -> Processor:
    p = Processor("ledger", settings=settings, core="librdkafka")
    ledger = Ledger(p.settings.secret_key, on_redelivery=lambda kind: REDELIVERED.labels(kind).inc())
    crash = CrashAfterBatches()  # the crash-and-redelivery tests' fault hook

    def run(handler, items: list[In]) -> list[Out]:
        with p.db.session() as s:
            outs = handler(s, [i.event for i in items])
        crash.batch_committed()
        return outs

    p.consume(topics.POINTS_AWARDED, lambda items: run(ledger.handle_awards, items), in_flight=OVERLAP)
    p.consume(topics.POINTS_COMMANDS, lambda items: run(ledger.handle_commands, items), in_flight=OVERLAP)
    return p
