"""The ledger processor's Faust app.

Its domain logic comes with its own issue. Until then it consumes its topics and hands every
event to the topic's DLQ with that reason, so nothing sent to it vanishes.
"""

from services.core import topics
from services.core.processor import In, Processor, Rejected


def _not_yet(items: list[In]) -> list:
    raise Rejected("the ledger processor does not handle this event yet", "not_implemented")


def build() -> Processor:
    p = Processor("ledger")
    for name in (topics.POINTS_AWARDED,topics.POINTS_COMMANDS,):
        p.consume(name, _not_yet)
    return p
