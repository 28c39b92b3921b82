"""HTTP/JSON carrier connector: POST a JSON submit with a bearer token, map the answer.

Protocol (what services/simulator speaks): POST ``submit_url`` with
``{"to", "from", "text", "encoding", "segments", "reference"}``; 200 answers
``{"carrier_message_id"}``; 429 carries Retry-After; 4xx carries ``{"error", "reason"?}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.core.carriers import Carrier

from ..base import (
    CarrierError,
    ConnectionFailed,
    RecipientOptedOut,
    RejectedByCarrier,
    Submission,
    SubmitResult,
    Throttled,
    TransientError,
    register,
)

log = logging.getLogger("herald.egress.http")

MAX_REASON = 200
# Carriers word an opt-out refusal many ways; all of them are permanent for this recipient.
_OPTED_OUT = re.compile(r"opt(ed)?[-_ ]?out|black[-_ ]?list|block[-_ ]?list|unsubscribed|^21610\b", re.I)


@register("http")
class HttpConnector:
    """One shared ``httpx.AsyncClient`` (connection pool) per carrier.

    ``transport`` replaces the network (tests pass ``httpx.MockTransport``). Carrier options
    read: ``max_connections`` (default 16) and ``max_keepalive`` (default: all of them).

    Sizing, measured with ``make bench-profile``: keeping fewer connections alive than may be
    open makes a busy worker open and close a TCP connection for most submissions; and httpx
    checks every pooled connection (socket calls included) for each request it places, and each
    queued request on every release, so a large pool with requests waiting in it cost more CPU
    than the submissions themselves. Submissions therefore wait here, never in httpx's pool, and
    the pool is as small as the carrier's latency allows (in flight ~ rate x latency).
    """

    def __init__(self, carrier: Carrier, *, transport: httpx.AsyncBaseTransport | None = None,
                 auth: httpx.Auth | None = None) -> None:
        if not carrier.submit_url:
            raise ValueError(f"carrier {carrier.name!r} has no submit_url")
        self.name = carrier.name
        self._url = carrier.submit_url
        self._token = carrier.api_token
        opts = carrier.options
        max_connections = int(opts.get("max_connections", 16))
        self._in_flight = asyncio.Semaphore(max_connections)
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(carrier.timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=int(opts.get("max_keepalive", max_connections)),
            ),
            auth=auth,
            headers={} if auth is not None else {"Authorization": f"Bearer {carrier.api_token}"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never the token
        return f"HttpConnector(name={self.name!r}, url={self._url!r})"

    id_field = "carrier_message_id"  # the accepted answer's field holding the carrier's id

    def _request(self, sub: Submission) -> dict[str, Any]:
        """The POST's keyword arguments for httpx (a dialect sends another body)."""
        body: dict[str, Any] = {
            "to": sub.to,
            "text": sub.text,
            "encoding": sub.encoding,
            "segments": sub.segments,
            "reference": sub.message_id,
        }
        if sub.sender is not None:  # the simulator refuses "from": null; absent means default
            body["from"] = sub.sender
        return {"json": body}

    async def submit(self, sub: Submission) -> SubmitResult:
        try:
            async with self._in_flight:
                resp = await self._client.post(self._url, **self._request(sub))
        except httpx.ConnectTimeout as exc:
            # Nothing reached the carrier, so failing over cannot send the message twice.
            raise ConnectionFailed(self._clean(f"connect timeout: {exc}")) from None
        except httpx.ConnectError as exc:
            raise ConnectionFailed(self._clean(f"connect failed: {exc}")) from None
        except httpx.TimeoutException as exc:
            raise TransientError(self._clean(f"{type(exc).__name__}: {exc}")) from None
        except httpx.TransportError as exc:
            raise TransientError(self._clean(f"{type(exc).__name__}: {exc}")) from None
        try:
            return self._result(resp)
        except CarrierError as exc:
            log.debug("%s refused %s: HTTP %d %s", self.name, sub.message_id, resp.status_code, exc.reason)
            raise

    def _result(self, resp: httpx.Response) -> SubmitResult:
        status = resp.status_code
        if 200 <= status < 300:
            try:
                cid = resp.json().get(self.id_field)
            except (ValueError, AttributeError):
                cid = None
            if isinstance(cid, str | int) and not isinstance(cid, bool) and str(cid):
                return SubmitResult(carrier_message_id=str(cid), carrier=self.name)
            # Unreadable acceptance: the carrier may hold the message, but without its id no DLR
            # can be matched; retrying (possible duplicate) beats losing track of it.
            raise TransientError(self._clean(f"HTTP {status} without {self.id_field}"))
        reason = self._reason(resp)
        if status == 429:
            raise Throttled(_retry_after(resp.headers.get("retry-after")), reason)
        if status == 408 or status >= 500:
            raise TransientError(reason)
        if 400 <= status < 500:
            if _OPTED_OUT.search(reason):
                raise RecipientOptedOut(reason)
            raise RejectedByCarrier(reason)
        raise TransientError(self._clean(f"unexpected HTTP {status}"))

    def _reason(self, resp: httpx.Response) -> str:
        """The carrier's own words: the JSON ``error`` (with ``reason`` if any), else the text."""
        text = resp.text.strip()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str) and doc["message"]:
            # Twilio's form: {"code": 21211, "message": "..."}
            code = doc.get("code")
            text = f"{code}: {doc['message']}" if code is not None else doc["message"]
        elif isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"]:
            text = doc["error"]
            if isinstance(doc.get("reason"), str) and doc["reason"]:
                text = f"{text}: {doc['reason']}"
        return self._clean(text or f"HTTP {resp.status_code}")

    def _clean(self, reason: str) -> str:
        reason = " ".join(reason.split())
        if self._token:  # a carrier echoing our credentials must not put them in logs or events
            reason = reason.replace(self._token, "[redacted]")
        return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
