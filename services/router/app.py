"""The router processor's Faust app: sms.inbound in; replies, opt-outs, code submissions, loyalty
commands and tenant inbox copies out. The logic is in ``domain``; this only wires it up."""

from __future__ import annotations

from services.core import topics
from services.core.processor import In, Out, Processor
from services.core.rdkafka_core import OVERLAP
from services.core.settings import Settings

from .domain import Router


def build(settings: Settings | None = None) -> Processor:
    p = Processor("router", settings=settings, core="librdkafka")
    router = Router()
    db = p.db

    def handle(items: list[In]) -> list[Out]:
        # One session and one transaction per batch; committed before the outputs are sent.
        with db.session() as s:
            return router.route_batch(s, [i.event for i in items])

    p.consume(topics.SMS_INBOUND, handle, in_flight=OVERLAP)
    return p
