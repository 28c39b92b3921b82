"""Twilio-style submission: POST ``submit_url`` (Twilio's is
``https://api.twilio.com/2010-04-01/Accounts/<AccountSid>/Messages.json``) form-encoded ``To``,
``From``, ``Body`` and ``StatusCallback``, HTTP Basic auth with ``options.account_sid`` and the
auth token (``api_token``). 201 answers ``{"sid": ...}``; refusals ``{"code", "message"}``
(21610: the recipient replied STOP, an opt-out); 429 and 5xx as the JSON dialect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from services.core.carriers import Carrier

from ..base import Submission, register
from ..http.connector import HttpConnector


@register("twilio")
class TwilioConnector(HttpConnector):
    id_field = "sid"

    def __init__(self, carrier: Carrier, *,
                 connector_factory: Callable[[], aiohttp.BaseConnector] | None = None) -> None:
        sid = str(carrier.options.get("account_sid", ""))
        if not sid:
            raise ValueError(f"carrier {carrier.name!r}: a twilio carrier needs options.account_sid")
        super().__init__(carrier, connector_factory=connector_factory,
                         authorization=aiohttp.encode_basic_auth(sid, carrier.api_token))
        self._callback = str(carrier.options.get("status_callback", ""))

    def __repr__(self) -> str:  # never the token
        return f"TwilioConnector(name={self.name!r}, url={self._url!r})"

    def _request(self, sub: Submission) -> dict[str, Any]:
        data = {"To": sub.to, "Body": sub.text}
        if sub.sender is not None:
            data["From"] = sub.sender
        if self._callback:  # where its status callbacks go: ingress's /carriers/<name>/dlr
            data["StatusCallback"] = self._callback
        return {"data": data}
