"""Carrier simulator: an aiohttp app that accepts MT submits and sends signed DLRs back.

Endpoints
- POST /submit        bearer-authenticated MT submit; 200 {"carrier_message_id", "status"}
- POST /submit/batch  {"messages": [...]} (up to 1,000), each checked as /submit checks it;
                      200 {"results": [{"http_status": <its status>, ...its answer}, ...]}
- POST /control       change behaviour (see `Behaviour`); GET /control shows it
- GET  /submissions   recorded accepted submits, filter with ?to= and ?reference=
- DELETE /submissions forget recorded submits
- GET  /stats         counters
- GET  /health        {"status": "ok"}

Checks on /submit run in this order, so tests can reason about which answer wins:
latency, down (503), drop_connection before_accept, bearer token (401), throttle (429),
body (400), reject_prefix (400), fail_ratio (fail_status, 503 by default), accept (then
drop_connection after_accept). /submit/batch refuses the whole request on the checks up to
throttle and a body that is not a list of messages; the rest are per message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("herald.simulator")

DLR_STATUSES = frozenset({"delivered", "undeliverable", "expired", "rejected", "failed", "unknown"})


def _setting(default: Any, env: str, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class SimulatorConfig:
    """Start-up settings; each can be set from the environment variable named in `env`."""

    port: int = _setting(8900, "HERALD_SIM_PORT", "TCP port to listen on, on 127.0.0.1")
    name: str = _setting("sim", "HERALD_SIM_NAME", "carrier name, used in logs")
    dlr_url: str = _setting(
        "http://127.0.0.1:8080/carriers/sim/dlr", "HERALD_SIM_DLR_URL", "where DLRs are POSTed"
    )
    dlr_secret: str = _setting(
        "sim-secret", "HERALD_SIM_DLR_SECRET", "HMAC-SHA256 key for X-Herald-Signature"
    )
    dlr_delay_ms: int = _setting(
        200, "HERALD_SIM_DLR_DELAY_MS", "delay between accepting a submit and its DLR"
    )
    api_token: str = _setting(
        "sim-token", "HERALD_SIM_API_TOKEN", "bearer token required on /submit"
    )
    dlr_attempts: int = _setting(4, "HERALD_SIM_DLR_ATTEMPTS", "tries per DLR before giving up")
    dlr_backoff_ms: int = _setting(
        200, "HERALD_SIM_DLR_BACKOFF_MS", "first retry delay for a DLR; doubles each retry"
    )
    dlr_concurrency: int = _setting(
        16, "HERALD_SIM_DLR_CONCURRENCY", "most DLR POSTs in flight at once"
    )
    dlr_batch: int = _setting(
        1, "HERALD_SIM_DLR_BATCH",
        "most reports per DLR POST; above 1, the reports due together go in one "
        '{"reports": [...]} body, as aggregators that batch their callbacks send them',
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimulatorConfig:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None:
                continue
            if isinstance(f.default, int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise ValueError(f"{f.metadata['env']}={raw!r} is not an integer") from None
            else:
                values[f.name] = raw
        return cls(**values)

    def validate(self) -> SimulatorConfig:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range")
        if not self.dlr_url.startswith(("http://", "https://")):
            raise ValueError(f"dlr_url {self.dlr_url!r} is not an http(s) URL")
        if not self.api_token:
            raise ValueError("api_token must not be empty")
        if not self.dlr_secret:
            raise ValueError("dlr_secret must not be empty")
        if self.dlr_delay_ms < 0 or self.dlr_backoff_ms < 0:
            raise ValueError("dlr_delay_ms and dlr_backoff_ms must be >= 0")
        if self.dlr_attempts < 1 or self.dlr_concurrency < 1 or self.dlr_batch < 1:
            raise ValueError("dlr_attempts, dlr_concurrency and dlr_batch must be >= 1")
        return self


@dataclass
class Behaviour:
    """What the simulated carrier does; changed at run time through POST /control.

    fail_status is the HTTP status of a fail_ratio failure (503, or 500 for a 500 storm).
    drop_connection cuts the connection of every submit with no answer: "before_accept" (nothing
    recorded: the submit never happened) or "after_accept" (recorded and its DLR sent: the carrier
    took it, but the sender cannot know, as when a connection resets after the request).
    dlr_before_response sends a submit's DLR, and waits for it to be answered, before answering
    the submit: the report reaches Herald before egress knows the carrier's message id.

    fail_ratio is deterministic, not random: the n-th submit that reaches the check fails when
    floor(n * ratio) > floor((n - 1) * ratio). With 0.5 every 2nd submit fails, with 0.25 every
    4th, with 1/3 every 3rd. The count restarts whenever fail_ratio is set or on reset.
    """

    fail_ratio: float = 0.0
    fail_status: int = 503
    throttle: bool = False
    down: bool = False
    latency_ms: float = 0
    reject_prefix: str | None = None
    dlr_status: str = "delivered"
    dlr_error_code: str | None = None
    dlr_delay_ms: float = 200
    dlr_enabled: bool = True
    dlr_before_response: bool = False
    drop_connection: str | None = None


@dataclass
class Submission:
    to: str
    sender: str
    text: str
    encoding: str | None
    segments: int | None
    reference: str
    carrier_message_id: str
    received_monotonic: float
    received_at: str
    dlr: str = "pending"  # pending | sent | failed | disabled | cancelled

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["from"] = d.pop("sender")
        return d


class BadRequest(ValueError):
    pass


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _non_negative(key: str, v: Any) -> float:
    if not _is_number(v) or v < 0 or not math.isfinite(v):
        raise BadRequest(f"{key} must be a number >= 0")
    return v


def _flag(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise BadRequest(f"{key} must be true or false")
    return v


def _ratio(key: str, v: Any) -> float:
    if not _is_number(v) or not 0 <= v <= 1:
        raise BadRequest(f"{key} must be a number between 0 and 1")
    return v


def _prefix(key: str, v: Any) -> str | None:
    if v is not None and (not isinstance(v, str) or not v):
        raise BadRequest(f"{key} must be a non-empty string or null")
    return v


def _http_error(key: str, v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 500 <= v <= 599:
        raise BadRequest(f"{key} must be an HTTP status from 500 to 599")
    return v


def _drop(key: str, v: Any) -> str | None:
    if v not in (None, "before_accept", "after_accept"):
        raise BadRequest(f"{key} must be null, 'before_accept' or 'after_accept'")
    return v


def _dlr_status(key: str, v: Any) -> str:
    if v not in DLR_STATUSES:
        raise BadRequest(f"{key} must be one of {sorted(DLR_STATUSES)}")
    return v


def _optional_str(key: str, v: Any) -> str | None:
    if v is not None and not isinstance(v, str):
        raise BadRequest(f"{key} must be a string or null")
    return v


_CONTROLS: dict[str, Callable[[str, Any], Any]] = {
    "fail_ratio": _ratio,
    "fail_status": _http_error,
    "throttle": _flag,
    "down": _flag,
    "latency_ms": _non_negative,
    "reject_prefix": _prefix,
    "dlr_status": _dlr_status,
    "dlr_error_code": _optional_str,
    "dlr_delay_ms": _non_negative,
    "dlr_enabled": _flag,
    "dlr_before_response": _flag,
    "drop_connection": _drop,
}


MAX_BATCH = 1000  # messages in one /submit/batch request


def _parse_submit(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    for key in ("to", "text", "reference"):
        if key not in body:
            raise BadRequest(f"missing field {key!r}")
    to, text, reference = body["to"], body["text"], body["reference"]
    sender = body.get("from", "")
    encoding = body.get("encoding")
    segments = body.get("segments")
    if not isinstance(to, str) or not to:
        raise BadRequest("'to' must be a non-empty string")
    if not isinstance(text, str):
        raise BadRequest("'text' must be a string")
    if not isinstance(reference, str) or not reference:
        raise BadRequest("'reference' must be a non-empty string")
    if not isinstance(sender, str):
        raise BadRequest("'from' must be a string")
    if encoding is not None and encoding not in ("gsm7", "ucs2"):
        raise BadRequest("'encoding' must be 'gsm7' or 'ucs2'")
    if segments is not None and (
        not isinstance(segments, int) or isinstance(segments, bool) or segments < 1
    ):
        raise BadRequest("'segments' must be an integer >= 1")
    return {
        "to": to,
        "sender": sender,
        "text": text,
        "reference": reference,
        "encoding": encoding,
        "segments": segments,
    }


def _error(status: int, error: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.behaviour = self._default_behaviour()
        self.submissions: list[Submission] = []
        self.stats = self._zero_stats()
        self._fail_checks = 0
        self._session: aiohttp.ClientSession | None = None
        self._dlr_slots = asyncio.Semaphore(config.dlr_concurrency)
        self._dlr_tasks: set[asyncio.Task[None]] = set()
        # dlr_batch > 1: reports due, each with its submission and the future its sender awaits
        self._due: list[tuple[dict[str, Any], Submission, asyncio.Future[None]]] = []
        self._flushing = False

    def _default_behaviour(self) -> Behaviour:
        return Behaviour(dlr_delay_ms=self.config.dlr_delay_ms)

    @staticmethod
    def _zero_stats() -> dict[str, int]:
        return dict.fromkeys(
            (
                "submitted",
                "failed",
                "throttled",
                "rejected",
                "malformed",
                "unauthorized",
                "dlr_sent",
                "dlr_failed",
                "dropped",
            ),
            0,
        )

    # lifecycle

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        # One session for all DLRs; per-request timeout so a hung receiver costs one attempt.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            yield
        finally:
            await self._cancel_dlrs()
            await self._session.close()
            self._session = None

    async def _cancel_dlrs(self) -> None:
        tasks = list(self._dlr_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # fail_ratio

    def _should_fail(self) -> bool:
        self._fail_checks += 1
        n = self._fail_checks
        # A Fraction keeps 0.1 * 10 from landing at 0.999... and skipping a failure.
        r = Fraction(self.behaviour.fail_ratio).limit_denominator(1000)
        return math.floor(n * r) > math.floor((n - 1) * r)

    # handlers

    async def _refusal(self, request: web.Request) -> web.Response | None:
        """After the configured latency: what the carrier answers a whole request with before
        reading it (down, unauthorized, throttled), or None to go on."""
        b = self.behaviour
        if b.latency_ms:
            await asyncio.sleep(b.latency_ms / 1000)
        if b.down:
            self.stats["failed"] += 1
            return _error(503, "service unavailable")
        if b.drop_connection == "before_accept":
            return self._drop_connection(request)
        expected = f"Bearer {self.config.api_token}".encode()
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            self.stats["unauthorized"] += 1
            return _error(401, "unauthorized")
        if b.throttle:
            self.stats["throttled"] += 1
            return web.json_response(
                {"error": "throttled"}, status=429, headers={"Retry-After": "1"}
            )
        return None

    async def _one(self, body: Any) -> tuple[int, dict[str, Any]]:
        """One message of a request: (HTTP status, answer) as /submit answers it."""
        b = self.behaviour
        try:
            fields_ = _parse_submit(body)
        except BadRequest as exc:
            self.stats["malformed"] += 1
            return 400, {"error": "malformed body", "reason": str(exc)}
        if b.reject_prefix and fields_["to"].startswith(b.reject_prefix):
            self.stats["rejected"] += 1
            return 400, {"error": "invalid destination"}
        if b.fail_ratio and self._should_fail():
            self.stats["failed"] += 1
            return b.fail_status, {"error": "temporarily unavailable"}

        sub = Submission(
            **fields_,
            carrier_message_id=uuid.uuid4().hex,
            received_monotonic=time.monotonic(),
            received_at=_utc_now_iso(),
        )
        self.submissions.append(sub)
        self.stats["submitted"] += 1
        log.info(
            "%s accepted %s for %s (ref %s)",
            self.config.name,
            sub.carrier_message_id,
            sub.to,
            sub.reference,
        )
        if b.dlr_enabled and b.dlr_before_response:
            await self._send_dlr(sub, b.dlr_status, b.dlr_error_code, 0)
        elif b.dlr_enabled:
            # DLR outcome is fixed at submit time so a later /control does not change it.
            task = asyncio.create_task(
                self._send_dlr(sub, b.dlr_status, b.dlr_error_code, b.dlr_delay_ms / 1000)
            )
            self._dlr_tasks.add(task)
            task.add_done_callback(self._dlr_tasks.discard)
        else:
            sub.dlr = "disabled"
        return 200, {"carrier_message_id": sub.carrier_message_id, "status": "accepted"}

    async def _read_json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:  # JSONDecodeError, or bytes that are not text
            raise BadRequest("body is not valid JSON") from None

    async def submit(self, request: web.Request) -> web.Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        try:
            body = await self._read_json(request)
            if not isinstance(body, dict):
                raise BadRequest("body must be a JSON object")
        except BadRequest as exc:
            self.stats["malformed"] += 1
            return _error(400, "malformed body", reason=str(exc))
        status, answer = await self._one(body)
        if self.behaviour.drop_connection == "after_accept":
            return self._drop_connection(request)
        return web.json_response(answer, status=status)

    async def submit_batch(self, request: web.Request) -> web.Response:
        """``{"messages": [...]}``: each message as /submit takes it, answered in one
        ``{"results": [{"http_status": <what /submit would give>, ...its answer}, ...]}`` in
        the same order. Down, unauthorized or throttled refuse the whole request."""
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        try:
            body = await self._read_json(request)
            messages = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(messages, list) or not messages:
                raise BadRequest("'messages' must be a non-empty list")
            if len(messages) > MAX_BATCH:
                raise BadRequest(f"at most {MAX_BATCH} messages per request")
        except BadRequest as exc:
            self.stats["malformed"] += 1
            return _error(400, "malformed body", reason=str(exc))
        results = []
        for message in messages:
            status, answer = await self._one(message)
            results.append({**answer, "http_status": status})
        if self.behaviour.drop_connection == "after_accept":
            return self._drop_connection(request)
        return web.json_response({"results": results})

    def _drop_connection(self, request: web.Request) -> web.Response:
        """Cut the connection with no answer (the sender sees it reset)."""
        self.stats["dropped"] += 1
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the sender

    async def _send_dlr(
        self, sub: Submission, status: str, error_code: str | None, delay_s: float
    ) -> None:
        try:
            await asyncio.sleep(delay_s)
            report = {
                "carrier_message_id": sub.carrier_message_id,
                "reference": sub.reference,
                "status": status,
                "error_code": error_code,
                "reported_at": _utc_now_iso(),
            }
            if self.config.dlr_batch > 1:
                done = asyncio.get_running_loop().create_future()
                self._due.append((report, sub, done))
                if not self._flushing:
                    self._flushing = True
                    task = asyncio.create_task(self._flush_reports())
                    self._dlr_tasks.add(task)
                    task.add_done_callback(self._dlr_tasks.discard)
                await done
            else:
                await self._post_reports(report, [sub])
        except asyncio.CancelledError:
            if sub.dlr == "pending":
                sub.dlr = "cancelled"
            raise

    async def _flush_reports(self) -> None:
        """Post the reports due, ``dlr_batch`` per body, until none are left."""
        try:
            while self._due:
                batch = self._due[: self.config.dlr_batch]
                del self._due[: self.config.dlr_batch]
                try:
                    await self._post_reports({"reports": [r for r, _, _ in batch]},
                                             [sub for _, sub, _ in batch])
                finally:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._flushing = False

    async def _post_reports(self, doc: dict[str, Any], subs: list[Submission]) -> None:
        """POST one signed body carrying the reports of ``subs``, retried with backoff."""
        body = json.dumps(doc, separators=(",", ":")).encode()
        signature = hmac.new(self.config.dlr_secret.encode(), body, hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "X-Herald-Signature": f"sha256={signature.hexdigest()}",
        }
        cfg = self.config
        reason = ""
        for attempt in range(1, cfg.dlr_attempts + 1):
            retryable = True
            async with self._dlr_slots:
                try:
                    assert self._session is not None
                    async with self._session.post(cfg.dlr_url, data=body, headers=headers) as resp:
                        if 200 <= resp.status < 300:
                            for sub in subs:
                                sub.dlr = "sent"
                            self.stats["dlr_sent"] += len(subs)
                            return
                        reason = f"HTTP {resp.status}"
                        # Other 4xx (bad signature, unknown id) will not improve on retry.
                        retryable = resp.status >= 500 or resp.status in (408, 429)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
            if not retryable or attempt == cfg.dlr_attempts:
                break
            await asyncio.sleep(cfg.dlr_backoff_ms / 1000 * 2 ** (attempt - 1))
        for sub in subs:
            sub.dlr = "failed"
        self.stats["dlr_failed"] += len(subs)
        log.warning(
            "%s gave up on %d DLR(s) (%s) after %d attempt(s): %s",
            cfg.name,
            len(subs),
            subs[0].carrier_message_id,
            attempt,
            reason,
        )

    async def control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "malformed body", reason="body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "malformed body", reason="body must be a JSON object")
        unknown = set(body) - set(_CONTROLS) - {"reset"}
        if unknown:
            return _error(
                400,
                "unknown control",
                reason=f"unknown keys {sorted(unknown)}; known: {sorted([*_CONTROLS, 'reset'])}",
            )
        try:
            reset = _flag("reset", body["reset"]) if "reset" in body else False
            changes = {k: _CONTROLS[k](k, v) for k, v in body.items() if k != "reset"}
        except BadRequest as exc:
            return _error(400, "invalid control", reason=str(exc))
        if reset:
            await self._cancel_dlrs()
            self.submissions.clear()
            self.stats = self._zero_stats()
            self.behaviour = self._default_behaviour()
            self._fail_checks = 0
        if "fail_ratio" in changes:
            self._fail_checks = 0
        self.behaviour = replace(self.behaviour, **changes)
        log.info("%s behaviour now %s", self.config.name, self.behaviour)
        return web.json_response({"behaviour": asdict(self.behaviour)})

    async def show_control(self, request: web.Request) -> web.Response:
        return web.json_response({"behaviour": asdict(self.behaviour)})

    async def list_submissions(self, request: web.Request) -> web.Response:
        to = request.query.get("to")
        reference = request.query.get("reference")
        rows = [
            s.to_json()
            for s in self.submissions
            if (to is None or s.to == to) and (reference is None or s.reference == reference)
        ]
        return web.json_response(rows)

    async def clear_submissions(self, request: web.Request) -> web.Response:
        self.submissions.clear()
        return web.json_response({"cleared": True})

    async def show_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "dlr_pending": len(self._dlr_tasks)})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


SIMULATOR = web.AppKey("simulator", Simulator)


def create_app(config: SimulatorConfig | None = None) -> web.Application:
    """Build the simulator app; `app[SIMULATOR]` gives tests direct access to its state."""
    config = (config or SimulatorConfig.from_env()).validate()
    sim = Simulator(config)
    app = web.Application()
    app[SIMULATOR] = sim
    app.cleanup_ctx.append(sim.lifecycle)
    app.router.add_post("/submit", sim.submit)
    app.router.add_post("/submit/batch", sim.submit_batch)
    app.router.add_post("/control", sim.control)
    app.router.add_get("/control", sim.show_control)
    app.router.add_get("/submissions", sim.list_submissions)
    app.router.add_delete("/submissions", sim.clear_submissions)
    app.router.add_get("/stats", sim.show_stats)
    app.router.add_get("/health", sim.health)
    return app
