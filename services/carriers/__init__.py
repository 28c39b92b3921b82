"""Carrier units, one folder per kind (http, twilio, smpp); importing this package registers each
kind's connector and webhooks. Shared by ingress (webhooks) and egress (submission, binds)."""

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
    WebhookRequest,
    build,
    register,
    webhooks,
)
from .http import connector as _http  # noqa: F401  (registers kind "http")
from .http import webhooks as _http_webhooks  # noqa: F401
from .smpp import connector as _smpp  # noqa: F401  (registers kind "smpp")
from .twilio import connector as _twilio  # noqa: F401  (registers kind "twilio")
from .twilio import webhooks as _twilio_webhooks  # noqa: F401

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
    "WebhookRequest",
    "build",
    "register",
    "webhooks",
]
