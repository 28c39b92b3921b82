"""Carrier connectors, one folder per kind; importing this package registers each of them."""

from .base import (
    CarrierError,
    ConnectionFailed,
    Connector,
    RecipientOptedOut,
    RejectedByCarrier,
    Submission,
    SubmitResult,
    Throttled,
    TransientError,
    build,
    register,
)
from .http import connector as _http  # noqa: F401  (registers kind "http")
from .smpp import connector as _smpp  # noqa: F401  (registers kind "smpp")

__all__ = [
    "CarrierError",
    "ConnectionFailed",
    "Connector",
    "RecipientOptedOut",
    "RejectedByCarrier",
    "Submission",
    "SubmitResult",
    "Throttled",
    "TransientError",
    "build",
    "register",
]
