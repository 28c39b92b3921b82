"""Parts of a concatenated MO that arrived on a bind, held in the database until all are in
(the same ``inbound_parts`` table ingress uses for webhook MO), so a part that was answered
with deliver_sm_resp survives a restart of egress."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core.db.models import InboundPart


def collect_part(s: Session, carrier: str, sender: str, ref: str, seq: int, total: int,
                 text: str) -> list[str] | None:
    """Store one part; when every part is in, their texts in order (kept until ``drop_parts``,
    after the whole text was published: a crash in between publishes it again, under the
    same message id)."""
    try:
        with s.begin_nested():
            s.add(InboundPart(carrier=carrier, sender=sender, ref=ref, seq=seq, total=total, text=text))
    except IntegrityError:
        pass  # the SMSC sent this part again (our answer to it was lost)
    rows = s.scalars(select(InboundPart).where(
        InboundPart.carrier == carrier, InboundPart.sender == sender, InboundPart.ref == ref)
        .order_by(InboundPart.seq)).all()
    if len({r.seq for r in rows}) < total:
        return None
    return [r.text for r in {r.seq: r for r in rows}.values()]


def drop_parts(s: Session, carrier: str, sender: str, ref: str) -> None:
    s.execute(delete(InboundPart).where(InboundPart.carrier == carrier, InboundPart.sender == sender,
                                        InboundPart.ref == ref))
