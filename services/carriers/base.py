"""The interface of a carrier unit (one folder per kind under services/carriers/): its
`Connector` (egress submits through it; a connection-based one also emits MO and receipts into
an `InboundSink`), its `Webhooks` (ingress hands it a carrier's request and publishes what it
returns), the short list of errors, and the registries that build both per declared carrier.

This package is shared by ingress and egress and imports only services.core."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from services.core.carriers import Carrier
from services.core.ids import stable_uuid


@dataclass(frozen=True)
class Submission:
    """One message, already encoded and segmented, ready for a carrier."""

    message_id: str  # Herald's id; carriers echo it back in DLRs as the reference
    to: str
    sender: str | None
    text: str
    encoding: str  # "gsm7" | "ucs2"
    segments: int


@dataclass(frozen=True)
class SubmitResult:
    carrier_message_id: str
    carrier: str


class CarrierError(Exception):
    """A carrier did not take the message. `transient` says whether trying again may help."""

    transient: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Throttled(CarrierError):
    """The carrier asks us to slow down (HTTP 429); retry after `retry_after` seconds if given."""

    transient = True

    def __init__(self, retry_after: float | None = None, reason: str = "throttled") -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ConnectionFailed(CarrierError):
    """The carrier could not be reached: nothing was sent, so another carrier may take it."""

    transient = True


class TransientError(CarrierError):
    """A 5xx answer or a timeout: the same carrier may succeed later."""

    transient = True


class RecipientOptedOut(CarrierError):
    """The carrier refuses the recipient as opted out or blacklisted: never retried."""

    transient = False


class RejectedByCarrier(CarrierError):
    """The carrier refused the message for a reason retrying will not change."""

    transient = False


@runtime_checkable
class Connector(Protocol):
    """Submission. A connection-based connector (``connection_based = True``, e.g. SMPP) also
    has ``async start(sink: InboundSink)``: what arrives on its connections it emits there."""

    name: str

    async def submit(self, sub: Submission) -> SubmitResult: ...

    async def close(self) -> None: ...


class InboundSink(Protocol):
    """Where a connection-based connector emits MO and receipts (egress gives it one)."""

    async def publish(self, topic: str, key: str, event: dict[str, Any]) -> None:
        """Produce and wait for the broker's acknowledgement; raise if it did not come."""

    async def collect_part(self, carrier: str, sender: str, ref: str, seq: int, total: int,
                           text: str) -> list[str] | None:
        """Store one part durably; all parts' texts in order once every part is in."""

    async def drop_parts(self, carrier: str, sender: str, ref: str) -> None:
        """Forget the parts of a text that was published."""


# -- inbound over HTTP ----------------------------------------------------------------------------
# The delivery vocabulary of sms.delivery: each unit maps its carrier's codes onto these.
DELIVERY_STATUSES = ("delivered", "undeliverable", "expired", "rejected", "accepted", "unknown")
_MO_NS = uuid.UUID("0c1f1d2e-8a33-4f7b-9b1e-2d4c6e8f0a11")


def mo_message_id(carrier: str, carrier_message_id: str) -> str:
    """A carrier retrying the same MO webhook gets the same platform id (router dedupes)."""
    return stable_uuid(_MO_NS, f"{carrier}\x1f{carrier_message_id}")


@dataclass(frozen=True)
class WebhookRequest:
    """A carrier's call to ``/carriers/<name>/<kind>``, as ingress received it."""

    kind: str  # "mo" | "dlr": the path the carrier called
    url: str  # the URL as the carrier called it (some signature schemes sign it)
    headers: Mapping[str, str]  # names lower-case
    body: bytes


@dataclass(frozen=True)
class MoPart:
    """One part of a concatenated MO; ingress keeps parts until the text is whole."""

    ref: str
    seq: int
    total: int
    text: str


@dataclass(frozen=True)
class Inbound:
    """What a unit made of one webhook: MO events (with their part when one of several) and
    delivery events to publish, and the answer the carrier's dialect expects once they are."""

    mo: tuple[tuple[dict[str, Any], MoPart | None], ...] = ()
    deliveries: tuple[dict[str, Any], ...] = ()
    answer_type: str | None = None  # None: ingress answers in JSON
    answer_body: bytes = b""


class Webhooks(Protocol):
    """A carrier's webhooks: authenticate a request, make Herald's events of it (raising
    services.core.sending.BadRequest, with the reason, for what cannot be accepted)."""

    def verify(self, req: WebhookRequest) -> bool: ...

    def parse(self, req: WebhookRequest) -> Inbound: ...


ConnectorFactory = Callable[[Carrier], Connector]
WebhooksFactory = Callable[[Carrier], Webhooks]
F = TypeVar("F", bound=ConnectorFactory)
W = TypeVar("W", bound=WebhooksFactory)

_REGISTRY: dict[str, ConnectorFactory] = {}
_WEBHOOKS: dict[str, WebhooksFactory] = {}


def register_webhooks(kind: str) -> Callable[[W], W]:
    """Class decorator: the webhooks of carriers declared with ``"kind": kind``."""

    def deco(factory: W) -> W:
        if kind in _WEBHOOKS and _WEBHOOKS[kind] is not factory:
            raise ValueError(f"webhooks of kind {kind!r} are registered twice")
        _WEBHOOKS[kind] = factory
        return factory

    return deco


def webhooks(carrier: Carrier) -> Webhooks | None:
    """The webhooks of ``carrier``; None for a kind that takes none (SMPP: MO come on binds)."""
    factory = _WEBHOOKS.get(carrier.kind)
    return factory(carrier) if factory is not None else None


def register(kind: str) -> Callable[[F], F]:
    """Class (or factory) decorator: carriers declared with ``"kind": kind`` are built by it."""

    def deco(factory: F) -> F:
        if kind in _REGISTRY and _REGISTRY[kind] is not factory:
            raise ValueError(f"connector kind {kind!r} is registered twice")
        _REGISTRY[kind] = factory
        return factory

    return deco


def build(carrier: Carrier) -> Connector:
    """The connector for ``carrier``, chosen by its ``kind``."""
    try:
        factory = _REGISTRY[carrier.kind]
    except KeyError:
        raise ValueError(
            f"carrier {carrier.name!r} has kind {carrier.kind!r}; known kinds: {sorted(_REGISTRY)}"
        ) from None
    return factory(carrier)
