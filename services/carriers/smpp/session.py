"""One SMPP 3.4 bind over asyncio: bind, a window of outstanding requests, enquire_link, the
SMSC's requests (deliver_sm, enquire_link, unbind) answered, and unbind after draining.

The session does not reconnect; ``connector.BindKeeper`` does (backoff with jitter). A
deliver_sm is answered only when the ``on_deliver`` callback returns the status to answer
with: the connector returns after the broker acknowledged what the PDU carried.

Cheap per PDU, as egress pays for it per submission (bench/bench_smpp.py): what is written in
one turn of the event loop leaves in one write (the window's submissions, woken together by
the responses read together); frames are cut from one read buffer; requests wait on their
future alone, and one timer task fails those past their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import pdu as P

log = logging.getLogger("herald.egress.smpp")

DeliverHandler = Callable[[P.ShortMessage], Awaitable[int]]
READ_CHUNK = 65536


class SessionError(Exception):
    """The bind is gone or never came up."""


class BindRefused(SessionError):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {P.status_name(status)} (0x{status:08X})")
        self.status = status


class ConnectionLost(SessionError):
    """The connection ended with the request unanswered: the SMSC may or may not have it."""


class ResponseTimeout(SessionError):
    """No answer in time to a request that was written: the SMSC may have it."""


class NotBound(SessionError):
    """Nothing was written: the bind was down or closing."""


class _Unframed(Exception):
    """The stream cannot be cut into PDUs any more."""


class NackError(SessionError):
    def __init__(self, status: int) -> None:
        super().__init__(f"generic_nack {P.status_name(status)} (0x{status:08X})")
        self.status = status


@dataclass(frozen=True)
class BindConfig:
    host: str
    port: int
    system_id: str
    password: str = field(default="", repr=False)
    system_type: str = ""
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    window: int = 10
    enquire_link_s: float = 30.0
    response_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    drain_timeout_s: float = 10.0


class Session:
    """A bound connection. ``mode``: "trx", "tx" or "rx"."""

    def __init__(self, cfg: BindConfig, mode: str, on_deliver: DeliverHandler | None = None,
                 name: str = "smpp") -> None:
        self.cfg, self.mode, self.name = cfg, mode, name
        self.on_deliver = on_deliver
        self._seq = itertools.count(1)
        self._pending: dict[int, asyncio.Future[P.Pdu]] = {}
        self._deadlines: dict[int, tuple[float, float, int]] = {}  # seq -> (deadline, timeout, command)
        self._out: list[bytes] = []  # written at the end of this turn of the loop
        self._window = asyncio.Semaphore(cfg.window)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task] = []
        self._inbound: set[asyncio.Task] = set()
        self._closing = False
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.smsc_system_id = ""

    @property
    def bind_command(self) -> int:
        return {"trx": P.BIND_TRANSCEIVER, "tx": P.BIND_TRANSMITTER, "rx": P.BIND_RECEIVER}[self.mode]

    @property
    def can_submit(self) -> bool:
        return self.mode in ("trx", "tx") and not self._closing and not self.closed.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _next_seq(self) -> int:
        seq = next(self._seq)
        if seq > 0x7FFFFFFF:
            self._seq = itertools.count(2)
            seq = 1
        return seq

    # -- lifecycle ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and bind; raises OSError (unreachable), BindRefused or ResponseTimeout."""
        c = self.cfg
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(c.host, c.port), c.connect_timeout_s)
        self._tasks.append(asyncio.create_task(self._read_loop(), name=f"{self.name}-read"))
        self._tasks.append(asyncio.create_task(self._expiry_loop(), name=f"{self.name}-expiry"))
        bind = P.Bind(self.bind_command, c.system_id, c.password, c.system_type, 0x34, c.addr_ton,
                      c.addr_npi, c.address_range)
        try:
            resp = await self.request(bind)
        except BaseException:
            await self._abort("bind failed")
            raise
        if resp.status != P.ESME_ROK:
            await self._abort("bind refused")
            raise BindRefused(resp.status)
        assert isinstance(resp, P.BindResp)
        self.smsc_system_id = resp.system_id
        self._tasks.append(asyncio.create_task(self._enquire_loop(), name=f"{self.name}-enquire"))

    async def close(self) -> None:
        """Stop taking submissions, wait for the window to drain, unbind, disconnect."""
        if self.closed.is_set():
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.drain_timeout_s
        while self._pending and loop.time() < deadline and not self.closed.is_set():
            await asyncio.wait(list(self._pending.values()), timeout=deadline - loop.time())
        if not self.closed.is_set():
            with contextlib.suppress(SessionError, OSError):
                await self.request(P.Empty(P.UNBIND), timeout=min(5.0, self.cfg.response_timeout_s))
        if self._inbound:  # deliver_sm being published: their answers still go out
            await asyncio.wait(list(self._inbound), timeout=self.cfg.drain_timeout_s)
        await self._abort("unbound")

    async def _abort(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
        self._flush()  # what was queued in this turn (an unbind_resp, a nack) still goes
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        me = asyncio.current_task()
        for t in self._tasks:
            if t is not me:
                t.cancel()
        self._fail_pending(ConnectionLost(f"connection closed ({self.close_reason})"))
        self.closed.set()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        self._deadlines = {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    # -- requests -------------------------------------------------------------------------------
    async def request(self, pdu: P.Pdu, timeout: float | None = None) -> P.Pdu:
        """Send a request and wait for its response (any command_status)."""
        if self.closed.is_set() or self._writer is None:
            raise NotBound(f"not connected ({self.close_reason or 'never opened'})")
        seq = self._next_seq()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[P.Pdu] = loop.create_future()
        wait = timeout or self.cfg.response_timeout_s
        data = P.encode(pdu, seq)  # before it is pending: a PduError leaves nothing behind
        self._pending[seq] = fut
        self._deadlines[seq] = (loop.time() + wait, wait, pdu.command_id)
        try:
            self._write(data)
            return await fut
        finally:
            self._pending.pop(seq, None)
            self._deadlines.pop(seq, None)

    async def _expiry_loop(self) -> None:
        """Fail the requests unanswered past their deadline (ResponseTimeout), a few times a
        second: one timer for the window instead of one per request."""
        loop = asyncio.get_running_loop()
        tick = min(0.25, self.cfg.response_timeout_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            late = [(seq, wait, cid) for seq, (deadline, wait, cid) in self._deadlines.items()
                    if deadline <= now]
            for seq, wait, cid in late:
                self._deadlines.pop(seq, None)
                fut = self._pending.get(seq)
                if fut is not None and not fut.done():
                    fut.set_exception(ResponseTimeout(
                        f"no answer to {P.command_name(cid)} within {wait:g}s"))

    async def submit(self, sm: P.ShortMessage) -> P.MessageIdResp:
        """One submit_sm within the window; the response whatever its command_status."""
        if not self.can_submit:
            raise NotBound(f"bind is not taking submissions ({self.close_reason or self.mode})")
        async with self._window:
            resp = await self.request(sm)
        if isinstance(resp, P.Empty) and resp.command_id == P.GENERIC_NACK:
            raise NackError(resp.status)
        assert isinstance(resp, P.MessageIdResp)
        return resp

    def _send(self, pdu: P.Pdu) -> None:
        self._write(P.encode(pdu))

    def _write(self, data: bytes) -> None:
        """Queue ``data``; what this turn of the loop queues leaves in one write after it."""
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._writer is not None and not self._writer.is_closing():
            self._writer.write(out[0] if len(out) == 1 else b"".join(out))

    # -- reading --------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "connection lost"
        buf = b""
        try:
            while True:
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk:
                    raise asyncio.IncompleteReadError(buf, None)
                buf = buf + chunk if buf else chunk
                # every whole frame in the buffer; a partial one waits for the next read
                pos, end = 0, len(buf)
                while end - pos >= P.HEADER_LEN:
                    try:
                        length, cid, status, seq = P.parse_header(buf[pos:pos + P.HEADER_LEN])
                    except P.PduError as exc:
                        # The stream cannot be re-framed after a bad length: nack, then drop it.
                        self._send(P.Empty(P.GENERIC_NACK, 0, exc.status))
                        reason = f"unreadable PDU: {exc.reason}"
                        self._flush()
                        raise _Unframed from None
                    if end - pos < length:
                        break
                    frame, pos = buf[pos:pos + length], pos + length
                    try:
                        pdu = P.decode(frame)
                    except P.PduError as exc:
                        log.warning("%s: refusing %s: %s", self.name, P.command_name(cid), exc.reason)
                        if cid & P.RESP:
                            self._resolve(seq, P.Empty(P.GENERIC_NACK, seq, exc.status))
                        else:
                            self._send(P.Empty(P.GENERIC_NACK, seq, exc.status))
                        continue
                    self._dispatch(pdu)
                buf = buf[pos:]
        except _Unframed:
            pass
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"connection lost: {type(exc).__name__}"
        except asyncio.CancelledError:
            return
        if self._closing:
            log.info("%s: %s after unbind", self.name, reason)
        else:
            log.warning("%s: %s", self.name, reason)
        await self._abort(reason)

    def _resolve(self, seq: int, pdu: P.Pdu) -> None:
        fut = self._pending.get(seq)
        if fut is not None and not fut.done():
            fut.set_result(pdu)
        elif pdu.command_id == P.GENERIC_NACK and seq == 0:
            log.warning("%s: SMSC sent generic_nack %s for an unreadable PDU", self.name,
                        P.status_name(pdu.status))

    def _dispatch(self, pdu: P.Pdu) -> None:
        cid = pdu.command_id
        if cid & P.RESP:  # responses, generic_nack included
            self._resolve(pdu.sequence, pdu)
        elif cid == P.ENQUIRE_LINK:
            self._send(P.Empty(P.ENQUIRE_LINK_RESP, pdu.sequence))
        elif cid == P.UNBIND:
            self._send(P.Empty(P.UNBIND_RESP, pdu.sequence))
            self._closing = True
            t = asyncio.create_task(self._abort("SMSC unbound"))
            self._inbound.add(t)
            t.add_done_callback(self._inbound.discard)
        elif cid == P.DELIVER_SM and isinstance(pdu, P.ShortMessage):
            t = asyncio.create_task(self._deliver(pdu))
            self._inbound.add(t)
            t.add_done_callback(self._inbound.discard)
        else:
            self._send(P.Empty(P.GENERIC_NACK, pdu.sequence, P.ESME_RINVCMDID))

    async def _deliver(self, sm: P.ShortMessage) -> None:
        if self.on_deliver is None:
            status = P.ESME_RX_T_APPN  # no one to take it here: the SMSC tries again
        else:
            try:
                status = await self.on_deliver(sm)
            except Exception:  # noqa: BLE001 - the SMSC keeps it and redelivers
                log.exception("%s: handling deliver_sm failed", self.name)
                status = P.ESME_RX_T_APPN
        self._send(P.MessageIdResp(P.DELIVER_SM_RESP, "", sm.sequence, status))

    async def _enquire_loop(self) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(self.cfg.enquire_link_s)
            try:
                await self.request(P.Empty(P.ENQUIRE_LINK))
            except ResponseTimeout:
                log.warning("%s: enquire_link unanswered; dropping the connection", self.name)
                await self._abort("enquire_link timed out")
                return
            except SessionError:
                return
