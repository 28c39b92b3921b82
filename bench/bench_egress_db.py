"""What egress's database work costs per message, apart from Kafka and the carrier: batches of
sms.outbound events through ``accept_batch`` (record and decide), ``record_sent_batch`` (the
carrier's ids and the move to 'sent') and ``handle_deliveries`` (the delivery reports), each
batch in its own transaction as egress commits them, on a migrated SQLite file (or
``--database-url``).

CPU time of this process (``time.process_time``; SQLite runs in it), per message; the machine is
shared, so the best of the rounds is the figure. ``python -m bench.bench_egress_db``; writes
``bench/results/bench-egress-db.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.carriers.base import SubmitResult
from services.core.carriers import Carrier
from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.models import Tenant
from services.core.messages import message_id_for
from services.core.schemas import new_event
from services.core.tenancy import create_tenant
from services.egress import dlr, domain

RESULTS = Path(__file__).resolve().parent / "results"
CARRIERS = {"sim": Carrier(name="sim", submit_url="http://sim/submit", prefixes=("+",), priority=10)}


class NoOptOuts:
    def blocked_many(self, s, items) -> list[bool]:
        return [False] * len(items)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def one_round(db: Database, batch: int, batches: int, tag: str) -> dict[str, float]:
    """CPU seconds of each stage over ``batches`` batches of ``batch`` messages."""
    t0 = datetime.now(UTC)
    spent = {"accept": 0.0, "sent": 0.0, "delivered": 0.0}
    for b in range(batches):
        events = [new_event("sms.outbound", tenant_id="bench",
                            message_id=message_id_for("bench", f"{tag}-{b}-{i}"),
                            request_id=f"{tag}-{b}-{i}", to=f"+86139{i:08d}", text="Your code is 4711",
                            source="api", accepted_at=iso(t0)) for i in range(batch)]
        start = time.process_time()
        with db.session() as s:
            decisions = domain.accept_batch(s, events, optouts=NoOptOuts(), carriers=CARRIERS)
        spent["accept"] += time.process_time() - start
        assert all(d.plan is not None for d in decisions)
        results = [(e["message_id"], SubmitResult(f"c-{e['message_id']}", "sim")) for e in events]
        known = {d.plan.submission.message_id: d.message for d in decisions if d.message is not None}
        start = time.process_time()
        with db.session() as s:
            domain.record_sent_batch(s, results, known=known)  # as egress: the rows it decided on
        spent["sent"] += time.process_time() - start
        reports = [new_event("sms.delivery", carrier="sim", carrier_message_id=cmid, status="delivered",
                             reported_at=iso(t0 + timedelta(milliseconds=i)))
                   for i, (_, r) in enumerate(results) for cmid in [r.carrier_message_id]]
        start = time.process_time()
        with db.session() as s:
            out = dlr.handle_deliveries(s, reports)
        spent["delivered"] += time.process_time() - start
        assert len(out) == batch, f"{len(out)} delivered of {batch}"
    return spent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    db = Database(url)
    try:
        with db.session() as s:
            if s.get(Tenant, "bench") is None:
                create_tenant(s, "bench", "Bench", default_sender="10690001")
        one_round(db, 50, 1, f"warm-{uuid.uuid4().hex[:6]}")
        rounds = [one_round(db, args.batch, args.batches, uuid.uuid4().hex[:8]) for _ in range(args.rounds)]
    finally:
        db.dispose()
    n = args.batch * args.batches
    best = {k: round(min(r[k] for r in rounds) / n * 1000, 4) for k in rounds[0]}
    figures = {"cpu_ms_per_message": {**best, "total": round(sum(best.values()), 4)},
               "batch": args.batch, "batches": args.batches, "rounds": args.rounds,
               "database": url.split(":", 1)[0]}
    print(f"egress database work, CPU ms per message ({figures['database']}, batches of {args.batch}): "
          + ", ".join(f"{k} {v:.3f}" for k, v in figures["cpu_ms_per_message"].items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench-egress-db.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
