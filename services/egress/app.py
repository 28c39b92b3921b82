"""The egress processor's Faust app (logic arrives with the messaging-path issue)."""

from services.core import topics
from services.core.processor import In, Processor, Rejected


def _not_yet(items: list[In]) -> list:
    raise Rejected("the egress processor does not handle this event yet", "not_implemented")


def build() -> Processor:
    p = Processor("egress")
    for name in (topics.SMS_OUTBOUND,topics.SMS_DELIVERY,):
        p.consume(name, _not_yet)
    return p
