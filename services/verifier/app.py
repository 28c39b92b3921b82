"""The verifier processor's Faust app.

Its domain logic comes with its own issue. Until then it consumes its topics and hands every
event to the topic's DLQ with that reason, so nothing sent to it vanishes.
"""

from services.core import topics
from services.core.processor import In, Processor, Rejected


def _not_yet(items: list[In]) -> list:
    raise Rejected("the verifier processor does not handle this event yet", "not_implemented")


def build() -> Processor:
    p = Processor("verifier")
    for name in (topics.CODES_SUBMITTED,):
        p.consume(name, _not_yet)
    return p
