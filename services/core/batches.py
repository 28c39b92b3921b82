""""Batch, then each event alone": the one place that decides what a handler failure means.

A handler runs over a whole batch; if it fails (for a reason that is not transient: those are
retried inside ``call``), it runs again over each event alone, so the event(s) that make it fail
go to the DLQ with the reason and the others still take effect. Used by both processor cores
(Faust agents and the librdkafka core) and by the pattern consumer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from .events import In, Out, Rejected

log = logging.getLogger(__name__)

M = TypeVar("M")  # the record as the Kafka client gave it (for the DLQ record)


class Isolating(Generic[M]):
    def __init__(self, name: str, call: Callable[[list[In]], Awaitable[Sequence[Out]]],
                 send: Callable[[Sequence[Out]], Awaitable[None]],
                 dead_letter: Callable[[In, M, str, str], Awaitable[None]]) -> None:
        """``call``: the handler, with transient failures already retried; ``send``: produce and
        wait for the acks; ``dead_letter(item, record, reason, kind)``: to the DLQ."""
        self.name, self.call, self.send, self.dead_letter = name, call, send, dead_letter

    async def run(self, items: list[tuple[In, M]]) -> None:
        if not items:
            return
        try:
            outs = await self.call([item for item, _ in items])
        except Exception:  # noqa: BLE001 - decided event by event below
            await self._one_by_one(items)
            return
        await self.send(outs)

    async def _one_by_one(self, items: list[tuple[In, M]]) -> None:
        for item, record in items:
            try:
                outs = await self.call([item])
            except Rejected as exc:
                await self.dead_letter(item, record, exc.reason, exc.kind)
            except Exception as exc:  # noqa: BLE001 - a bug or bad data in this event alone
                log.exception("%s: handler failed", self.name, exc_info=exc)
                await self.dead_letter(item, record, f"{type(exc).__name__}: {exc}",
                                       "processing_error")
            else:
                await self.send(outs)
