"""The one interface egress speaks to carriers through: a `Connector`, what it submits, what it
answers, the short list of errors it may raise, and the registry that builds one per carrier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from services.core.carriers import Carrier


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
    name: str

    async def submit(self, sub: Submission) -> SubmitResult: ...

    async def close(self) -> None: ...


ConnectorFactory = Callable[[Carrier], Connector]
F = TypeVar("F", bound=ConnectorFactory)

_REGISTRY: dict[str, ConnectorFactory] = {}


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
