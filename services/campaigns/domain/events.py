"""The sms.outbound events campaigns produce, with ids derived from what caused them.

A campaign message's request id is ``campaign:<campaign>:<member>[:<occurrence>]``: the same
campaign, member and occurrence always give the same request id, hence (``message_id_for``) the
same message id, which egress sends at most once. A reply's request id is derived from the
inbound message it answers.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.core import topics
from services.core.ids import stable_uuid
from services.core.messages import message_id_for
from services.core.processor import Out
from services.core.schemas import new_event, now_iso

_NS = uuid.UUID("7b0e4f4e-9a53-4c1e-8f7a-2d6c5b1a9e30")


def campaign_request_id(campaign_id: str, member_id: int | str, occurrence: str = "") -> str:
    rid = f"campaign:{campaign_id}:{member_id}"
    return f"{rid}:{occurrence}" if occurrence else rid


def reply_request_id(inbound_message_id: str) -> str:
    return f"campaign-reply:{inbound_message_id}"


def outbound(tenant_id: str, request_id: str, to: str, text: str, *, category: str,
             campaign_id: str | None, sender: str | None = None, in_reply_to: str | None = None,
             kind: str | None = None) -> Out:
    # The same request always carries the same event id, so consumers can dedupe a replay.
    value: dict[str, Any] = new_event(
        topics.SMS_OUTBOUND, tenant_id, event_id=stable_uuid(_NS, f"{tenant_id}\x1f{request_id}"),
        message_id=message_id_for(tenant_id, request_id),
        request_id=request_id, to=to, text=text, category=category, source="campaigns",
        campaign_id=campaign_id, in_reply_to=in_reply_to, accepted_at=now_iso(),
        attributes={"kind": kind} if kind else None, **({"from": sender} if sender else {}))
    return Out(topics.SMS_OUTBOUND, to, value)


def reply(event: dict[str, Any], text: str, *, campaign_id: str | None, kind: str) -> Out:
    """The one reply to an inbound text, from the number it was sent to."""
    return outbound(event["tenant_id"], reply_request_id(event["message_id"]), event["from"], text,
                    category="transactional", campaign_id=campaign_id, sender=event["to"],
                    in_reply_to=event["message_id"], kind=kind)
