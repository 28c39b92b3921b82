"""Messages waiting for a carrier to take traffic again (throttled, unreachable, answering 5xx).

Back-pressure is not failure: a message whose carriers cannot take it now is parked here with
when to try again and until when it may still go out (its ``expires_at``, else its validity
period), and the batch it came in moves on. Egress's redrive loop claims due rows, sends them
through the same policy and records the outcome; only a permanent refusal or the end of the
validity period settles a parked message otherwise than 'sent'.

The submission is kept sealed (it may carry a card password that the ``messages`` row only
holds redacted). Claiming is a conditional update of ``due_at``, so two workers never send the
same parked row at once; a worker that dies holding one leaves it to be claimed again after the
lease (at-least-once, as a redelivered batch would be).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, delete, false, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.carriers.base import Submission
from services.core.db.models import Base
from services.core.secrets import SecretBox
from services.core.utc import aware
from services.egress.domain import SendPlan

SEAL_PURPOSE = "herald/egress/deferred"


class DeferredSend(Base):
    """One message parked until its carriers take traffic again."""

    __tablename__ = "egress_deferred"
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    carriers: Mapped[str] = mapped_column(Text)  # JSON list, best first
    submission: Mapped[str] = mapped_column(Text)  # sealed JSON of the Submission
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[float] = mapped_column(Float, index=True)  # unix seconds; also the claim lease
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(512), default="")
    parked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A worker is sending it (its due_at is then the lease): never pulled forward while so.
    claimed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


@dataclass(frozen=True)
class Parked:
    plan: SendPlan
    deadline: datetime
    attempts: int


def park(s: Session, box: SecretBox, plan: SendPlan, *, deadline: datetime, due_at: float,
         reason: str, attempts: int, now: datetime | None = None) -> None:
    """Park (or park again) ``plan`` until ``due_at``."""
    row = s.get(DeferredSend, plan.submission.message_id)
    if row is None:
        row = DeferredSend(message_id=plan.submission.message_id, parked_at=now or datetime.now(UTC))
        s.add(row)
    row.carriers = json.dumps(plan.carriers)
    row.submission = box.seal_text(json.dumps(asdict(plan.submission)))
    row.deadline, row.due_at, row.attempts, row.reason = deadline, due_at, attempts, reason[:512]
    row.claimed = False


def parked_ids(s: Session, ids: list[str]) -> set[str]:
    """Which of ``ids`` are parked (a redelivered event of one must not send it a second time)."""
    if not ids:
        return set()
    return set(s.scalars(select(DeferredSend.message_id).where(DeferredSend.message_id.in_(ids))))


def claim_due(s: Session, box: SecretBox, now: float, *, limit: int, lease_s: float) -> list[Parked]:
    """The parked messages due by ``now`` (oldest due first) that this worker claimed: each one's
    ``due_at`` moved to ``now + lease_s`` only if nobody else moved it first."""
    rows = s.execute(select(DeferredSend.message_id, DeferredSend.due_at)
                     .where(DeferredSend.due_at <= now).order_by(DeferredSend.due_at)
                     .limit(limit)).all()
    t = DeferredSend.__table__
    claimed: list[str] = []
    for mid, due in rows:
        res = s.execute(update(t).where(t.c.message_id == mid, t.c.due_at == due)
                        .values(due_at=now + lease_s, claimed=True))
        if res.rowcount == 1:
            claimed.append(mid)
    out = []
    for row in s.scalars(select(DeferredSend).where(DeferredSend.message_id.in_(claimed))):
        sub = Submission(**json.loads(box.open(row.submission)))
        out.append(Parked(SendPlan(sub, json.loads(row.carriers)), aware(row.deadline), row.attempts))
    return out


def pull_forward(s: Session, carrier: str, now: float, *, limit: int) -> int:
    """A carrier takes traffic again: up to ``limit`` of the messages parked for it (it is one
    of their carriers), soonest due first, become due at ``now`` instead of waiting out their
    backoff (up to a minute). Rows a worker has claimed keep their lease. Returns how many."""
    t = DeferredSend.__table__
    # carriers is the JSON list of names: the quoted name matches that name only
    quoted = json.dumps(carrier).replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
    pattern = f"%{quoted}%"
    waiting = (select(t.c.message_id)
               .where(t.c.due_at > now, t.c.claimed == false(), t.c.carriers.like(pattern, escape="\\"))
               .order_by(t.c.due_at).limit(limit))
    return s.execute(update(t).where(t.c.message_id.in_(waiting), t.c.claimed == false())
                     .values(due_at=now)).rowcount or 0


def deadline_of(s: Session, message_id: str) -> tuple[datetime, int] | None:
    row = s.get(DeferredSend, message_id)
    return (aware(row.deadline), row.attempts) if row is not None else None


def release(s: Session, message_ids: list[str]) -> None:
    """Settled (sent, refused, expired): no longer parked. One statement for the batch (a
    lookup per message was 18% of egress's samples on the inbound path, where almost none is
    parked)."""
    if not message_ids:
        return
    t = DeferredSend.__table__
    for i in range(0, len(message_ids), 500):  # below every dialect's bound-parameter limit
        s.execute(delete(t).where(t.c.message_id.in_(message_ids[i:i + 500])))
