"""HTTP/JSON carrier connector: POST a JSON submit with a bearer token, map the answer.

Protocol (what services/simulator speaks): POST ``submit_url`` with
``{"to", "from", "text", "encoding", "segments", "reference"}``; 200 answers
``{"carrier_message_id"}``; 429 carries Retry-After; 4xx carries ``{"error", "reason"?}``.

A carrier that takes many messages per request names its ``batch_url`` (option): submissions
made at the same moment go together as ``{"messages": [...]}``, up to ``batch_max`` (option,
default 50) a request, and the answer ``{"results": [...]}`` holds one answer per message, in
order, each with the ``http_status`` a single submit would have had. Each message's answer is
read as a single submit's is; a whole request refused (429, 5xx, no connection) fails each of
its messages the same way, and egress retries or fails each one over as ever.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from services.core.carriers import Carrier
from services.core.concurrency import Coalescing

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


@dataclass(frozen=True, slots=True)
class Answer:
    """A carrier's HTTP answer, read whole: what the error mapping looks at."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    charset: str | None = None

    @property
    def text(self) -> str:
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


@register("http")
class HttpConnector:
    """One shared ``aiohttp.ClientSession`` (connection pool) per carrier, opened on first use.

    Carrier option read: ``max_connections`` (default 16): submissions in flight and
    connections kept open to the carrier. Submissions beyond it wait in aiohttp's pool (a queue,
    no per-request scan); the carrier's ``timeout_s`` bounds the TCP connect and each read, not
    that wait (no ``connect``/``total`` timeout, which would count it).
    ``connector_factory`` replaces the network layer (tests make a connect hang with it).

    aiohttp rather than httpx: 0.20 ms of CPU per submission against httpx's 1.13
    (``bench/bench_carrier_http.py``, against the simulator, 8 in flight).
    """

    def __init__(self, carrier: Carrier, *, authorization: str | None = None,
                 connector_factory: Callable[[], aiohttp.BaseConnector] | None = None) -> None:
        if not carrier.submit_url:
            raise ValueError(f"carrier {carrier.name!r} has no submit_url")
        self.name = carrier.name
        self._url = carrier.submit_url
        self._token = carrier.api_token
        self._max_connections = int(carrier.options.get("max_connections", 16))
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=carrier.timeout_s,
                                              sock_read=carrier.timeout_s)
        # the Authorization header: a bearer token unless a dialect sends another scheme
        self._headers = {"Authorization": authorization or f"Bearer {carrier.api_token}"}
        self._connector_factory = connector_factory
        self._session: aiohttp.ClientSession | None = None
        self._batch_url = carrier.options.get("batch_url") or None
        self._batch: Coalescing[Submission, SubmitResult | CarrierError] | None = None
        if self._batch_url:
            if type(self)._request is not HttpConnector._request:
                raise ValueError(f"carrier {carrier.name!r}: batch_url is for the JSON dialect only")
            self._batch = Coalescing(self._submit_batch, int(carrier.options.get("batch_max", 50)))

    def _open(self) -> aiohttp.ClientSession:
        # Made inside the running loop (aiohttp binds a session to it), once per connector.
        connector = (self._connector_factory() if self._connector_factory
                     else aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0))
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, headers=self._headers,
            json_serialize=lambda doc: orjson.dumps(doc).decode("utf-8"))
        return self._session

    def __repr__(self) -> str:  # never the token
        return f"HttpConnector(name={self.name!r}, url={self._url!r})"

    id_field = "carrier_message_id"  # the accepted answer's field holding the carrier's id

    def _request(self, sub: Submission) -> dict[str, Any]:
        """The POST's keyword arguments for aiohttp: ``json`` or ``data`` (a dialect sends another
        body)."""
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
        if self._batch is not None:
            result = await self._batch(sub)
            if isinstance(result, CarrierError):
                raise result
            return result
        answer = await self._post(self._url, **self._request(sub))
        try:
            return self._result(answer)
        except CarrierError as exc:
            log.debug("%s refused %s: HTTP %d %s", self.name, sub.message_id, answer.status, exc.reason)
            raise

    async def _post(self, url: str, **body: Any) -> Answer:
        """One POST, read whole; what went wrong on the way as the named carrier errors."""
        session = self._session or self._open()
        try:
            async with session.post(url, allow_redirects=False, **body) as resp:
                return Answer(resp.status, resp.headers, await resp.read(), resp.charset)
        except aiohttp.ConnectionTimeoutError:
            # Nothing reached the carrier, so failing over cannot send the message twice.
            raise ConnectionFailed("connect timeout: timed out") from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionFailed(self._clean(f"connect failed: {_os_reason(exc)}")) from None
        except (aiohttp.ServerTimeoutError, TimeoutError):
            raise TransientError("ReadTimeout: timed out") from None
        except aiohttp.ServerDisconnectedError:
            raise TransientError("ServerDisconnected: the carrier closed the connection without "
                                 "a full answer") from None
        except aiohttp.ClientError as exc:
            raise TransientError(self._clean(f"{type(exc).__name__}: {exc}")) from None

    async def _submit_batch(self, subs: list[Submission]) -> list[SubmitResult | CarrierError]:
        """One request for the submissions made together: each one's result or named error."""
        answer = await self._post(self._batch_url or "",
                                  json={"messages": [self._request(s)["json"] for s in subs]})
        if not 200 <= answer.status < 300:
            self._result(answer)  # raises the error the whole request's answer names
        try:
            results = orjson.loads(answer.body).get("results")
        except (ValueError, AttributeError):
            results = None
        if not isinstance(results, list) or len(results) != len(subs):
            # The carrier may hold them, but without their ids no DLR can be matched.
            raise TransientError(self._clean(f"HTTP {answer.status} without a result per message"))
        out: list[SubmitResult | CarrierError] = []
        for sub, item in zip(subs, results, strict=True):
            status = item.get("http_status", 200) if isinstance(item, dict) else 200
            try:
                one = Answer(int(status), {}, orjson.dumps(item))
                out.append(self._result(one))
            except CarrierError as exc:
                log.debug("%s refused %s: HTTP %s %s", self.name, sub.message_id, status, exc.reason)
                out.append(exc)
            except (TypeError, ValueError):
                out.append(TransientError(self._clean(f"unreadable answer for one message: {item!r}")))
        return out

    def _result(self, resp: Answer) -> SubmitResult:
        status = resp.status
        if 200 <= status < 300:
            try:
                cid = orjson.loads(resp.body).get(self.id_field)
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

    def _reason(self, resp: Answer) -> str:
        """The carrier's own words: the JSON ``error`` (with ``reason`` if any), else the text."""
        text = resp.text.strip()
        try:
            doc = orjson.loads(text)
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
        return self._clean(text or f"HTTP {resp.status}")

    def _clean(self, reason: str) -> str:
        reason = " ".join(reason.split())
        if self._token:  # a carrier echoing our credentials must not put them in logs or events
            reason = reason.replace(self._token, "[redacted]")
        return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    """'[Errno 111] Connection refused': the system's words, without aiohttp's host and port."""
    code = exc.os_error.errno
    if isinstance(code, int) and code > 0:  # resolver failures carry negative codes: their own text
        return f"[Errno {code}] {os.strerror(code)}"
    return str(exc.os_error) or "connection failed"


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
