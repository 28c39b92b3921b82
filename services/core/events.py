"""What a handler takes and returns, with no Kafka or Faust behind it: domain code imports
``Out``, ``In`` and ``Rejected`` from here (``services.core.processor`` re-exports them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Out:
    """An event a handler wants produced: catalogue topic name, key, event."""

    topic: str
    key: str | None
    value: dict[str, Any]


@dataclass(frozen=True)
class In:
    """A decoded, validated event and where it came from."""

    event: dict[str, Any]
    key: str | None
    partition: int
    offset: int
    topic: str | None = None  # catalogue name (no prefix); set by ``consume_pattern``
    raw: bytes | None = None  # the record's value exactly as it came off the topic


class Rejected(Exception):
    """Raised by a handler for one event that is well-formed but cannot be processed."""

    def __init__(self, reason: str, kind: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


Handler = Callable[[list[In]], Sequence[Out] | Awaitable[Sequence[Out]]]
