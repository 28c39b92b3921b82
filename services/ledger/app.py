"""The ledger processor: ``points.awarded`` and ``points.commands`` in; member replies
(``sms.outbound``) out.

Each batch is one database transaction; its replies are produced only after it committed, and
the offsets are committed only after the broker acknowledged them (services.core.processor).
"""

from __future__ import annotations

import os

from prometheus_client import Counter

from services.core import topics
from services.core.processor import In, Out, Processor
from services.core.settings import Settings

from .domain import Ledger

# Fault injection for the end-to-end test: after this many committed batches the process dies
# before producing their replies or committing their offsets. Unset in any real deployment.
CRASH_AFTER_BATCHES = "HERALD_FAULT_EXIT_AFTER_COMMITTED_BATCHES"

REDELIVERED = Counter("herald_ledger_redelivered_total", "Awards and redemptions seen before (no effect)",
                      ["kind"])


def build(settings: Settings | None = None) -> Processor:
    p = Processor("ledger", settings=settings)
    ledger = Ledger(p.settings.secret_key, on_redelivery=lambda kind: REDELIVERED.labels(kind).inc())
    crash_after = int(os.environ.get(CRASH_AFTER_BATCHES, "0") or 0)
    committed = 0

    def run(handler, items: list[In]) -> list[Out]:
        nonlocal committed
        with p.db.session() as s:
            outs = handler(s, [i.event for i in items])
        committed += 1
        if crash_after and committed >= crash_after:
            os._exit(70)
        return outs

    p.consume(topics.POINTS_AWARDED, lambda items: run(ledger.handle_awards, items))
    p.consume(topics.POINTS_COMMANDS, lambda items: run(ledger.handle_commands, items))
    return p
