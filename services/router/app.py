"""The router processor's Faust app (logic arrives with the messaging-path issue)."""

from services.core import topics
from services.core.processor import In, Processor, Rejected


def _not_yet(items: list[In]) -> list:
    raise Rejected("the router processor does not handle this event yet", "not_implemented")


def build() -> Processor:
    p = Processor("router")
    for name in (topics.SMS_INBOUND,):
        p.consume(name, _not_yet)
    return p
