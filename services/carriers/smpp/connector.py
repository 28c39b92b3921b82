"""The SMPP carrier connector: binds kept up (backoff with jitter), submissions over them within
their windows, and what arrives on them (MO, receipts) handed to egress to publish.

Carrier declaration (``deploy/carriers.json``), ``"kind": "smpp"``; the password is the
carrier's ``api_token`` (kept out of logs); everything else is in ``options`` (docs/smpp.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import Counter, Gauge

from services.core.carriers import Carrier
from services.core.ids import stable_uuid
from services.core.schemas import new_event, now_iso
from services.core.topics import SMS_DELIVERY, SMS_INBOUND

from ..base import (
    ConnectionFailed,
    InboundSink,
    RejectedByCarrier,
    Submission,
    SubmitResult,
    Throttled,
    TransientError,
    register,
)
from . import pdu as P
from . import receipt as R
from . import text as T
from .session import (
    BindConfig,
    BindRefused,
    ConnectionLost,
    NackError,
    NotBound,
    ResponseTimeout,
    Session,
)

log = logging.getLogger("herald.egress.smpp")

BINDS_UP = Gauge("herald_smpp_binds_up", "SMPP binds currently bound", ["carrier"])
INBOUND = Counter("herald_smpp_inbound_total", "deliver_sm received, by kind and outcome",
                  ["carrier", "kind", "outcome"])

# submit_sm_resp statuses that say "later", not "never".
THROTTLING = {P.ESME_RTHROTTLED, P.ESME_RMSGQFUL}
TRANSIENT = {P.ESME_RSYSERR, P.ESME_RX_T_APPN, 0x45, P.ESME_RUNKNOWNERR}  # 0x45: submit failed
_MO_NS = uuid.UUID("5b0f7f3e-2c41-4d7a-9a55-6f0d3a9c1e27")


@dataclass(frozen=True)
class SmppOptions:
    bind: BindConfig
    binds: int = 1
    bind_mode: str = "trx"  # "trx", or "tx+rx": a transmitter and a receiver per bind
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    gsm_packed: bool = False
    prefer_latin1: bool = False
    long_messages: str = "udh8"  # udh8 | udh16 | sar | payload
    source_ton: int | None = None
    source_npi: int | None = None
    dest_ton: int = 1
    dest_npi: int = 1
    submit_id_form: str = "auto"
    receipt_id_form: str = "auto"
    throttle_pause_s: float = 1.0
    service_type: str = ""
    national_country_code: str = ""  # e.g. "86": MO senders in national form made international

    @classmethod
    def from_carrier(cls, c: Carrier) -> SmppOptions:
        o = dict(c.options)
        if "host" not in o or "port" not in o or "system_id" not in o:
            raise ValueError(f"carrier {c.name!r}: an smpp carrier needs options host, port and "
                             "system_id")
        bind = BindConfig(
            host=str(o["host"]), port=int(o["port"]), system_id=str(o["system_id"]),
            password=c.api_token, system_type=str(o.get("system_type", "")),
            addr_ton=int(o.get("addr_ton", 0)), addr_npi=int(o.get("addr_npi", 0)),
            address_range=str(o.get("address_range", "")), window=int(o.get("window", 10)),
            enquire_link_s=float(o.get("enquire_link_s", 30.0)),
            response_timeout_s=float(o.get("response_timeout_s", c.timeout_s)),
            connect_timeout_s=float(o.get("connect_timeout_s", c.timeout_s)),
            drain_timeout_s=float(o.get("drain_timeout_s", 10.0)))
        opts = cls(
            bind=bind, binds=int(o.get("binds", 1)), bind_mode=str(o.get("bind_mode", "trx")),
            reconnect_min_s=float(o.get("reconnect_min_s", 1.0)),
            reconnect_max_s=float(o.get("reconnect_max_s", 30.0)),
            gsm_packed=bool(o.get("gsm_packed", False)), prefer_latin1=bool(o.get("prefer_latin1", False)),
            long_messages=str(o.get("long_messages", "udh8")),
            source_ton=o.get("source_ton"), source_npi=o.get("source_npi"),
            dest_ton=int(o.get("dest_ton", 1)), dest_npi=int(o.get("dest_npi", 1)),
            submit_id_form=str(o.get("submit_id_form", "auto")),
            receipt_id_form=str(o.get("receipt_id_form", "auto")),
            throttle_pause_s=float(o.get("throttle_pause_s", 1.0)),
            service_type=str(o.get("service_type", "")),
            national_country_code=str(o.get("national_country_code", "")).lstrip("+"))
        if opts.national_country_code and not (opts.national_country_code.isdigit()
                                               and 1 <= len(opts.national_country_code) <= 3):
            raise ValueError(f"carrier {c.name!r}: national_country_code must be 1 to 3 digits")
        if opts.bind_mode not in ("trx", "tx+rx"):
            raise ValueError(f"carrier {c.name!r}: bind_mode must be 'trx' or 'tx+rx'")
        if opts.long_messages not in ("udh8", "udh16", "sar", "payload"):
            raise ValueError(f"carrier {c.name!r}: long_messages must be udh8, udh16, sar or payload")
        if opts.binds < 1 or bind.window < 1:
            raise ValueError(f"carrier {c.name!r}: binds and window must be at least 1")
        return opts


class BindKeeper:
    """Keeps one bind up: connect, bind, wait for it to end, back off with full jitter, again."""

    def __init__(self, conn: SmppConnector, mode: str, index: int) -> None:
        self.conn, self.mode, self.index = conn, mode, index
        self.session: Session | None = None
        self.state = "down"
        self.last_error = "not started"
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.name = f"{conn.name}#{index}/{mode}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"smpp-bind-{self.name}")

    async def _run(self) -> None:
        o = self.conn.opts
        failures = 0
        while not self._stopping:
            s = Session(o.bind, self.mode, self.conn.on_deliver, name=self.name)
            try:
                await s.open()
            except BindRefused as exc:
                self._down(f"{exc}")
                log.error("carrier %s: %s on %s:%d as %r: carrier marked down, routing fails over",
                          self.conn.name, exc, o.bind.host, o.bind.port, o.bind.system_id)
            except (OSError, TimeoutError, ConnectionLost, ResponseTimeout, NotBound) as exc:
                self._down(f"cannot bind: {type(exc).__name__}: {exc}")
                log.warning("carrier %s: %s cannot bind to %s:%d: %s", self.conn.name, self.name,
                            o.bind.host, o.bind.port, self.last_error)
            else:
                failures = 0
                self.session, self.state, self.last_error = s, "up", ""
                self.conn._bind_changed()
                log.info("carrier %s: %s bound to %s (%s:%d)", self.conn.name, self.name,
                         s.smsc_system_id or "SMSC", o.bind.host, o.bind.port)
                await s.closed.wait()
                self.session = None
                if self._stopping:
                    break
                self._down(s.close_reason or "closed")
                log.warning("carrier %s: %s lost its bind: %s", self.conn.name, self.name, self.last_error)
            if self._stopping:
                break
            failures += 1
            cap = min(o.reconnect_max_s, o.reconnect_min_s * 2 ** min(failures - 1, 10))
            await asyncio.sleep(cap / 2 + random.random() * cap / 2)  # jitter: binds do not stampede

    def _down(self, reason: str) -> None:
        self.state, self.last_error = "down", reason
        self.conn._bind_changed()

    async def stop(self) -> None:
        self._stopping = True
        if self.session is not None:
            await self.session.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
        self.state = "stopped"


@register("smpp")
class SmppConnector:
    """An SMPP 3.4 ESME for one carrier: ``binds`` binds (transceivers, or tx+rx pairs)."""

    connection_based = True

    def __init__(self, carrier: Carrier) -> None:
        self.name = carrier.name
        self.opts = SmppOptions.from_carrier(carrier)
        self.ids = R.IdMatcher(carrier.name, self.opts.submit_id_form, self.opts.receipt_id_form)
        modes = ["trx"] if self.opts.bind_mode == "trx" else ["tx", "rx"]
        self.keepers = [BindKeeper(self, m, i) for i in range(self.opts.binds) for m in modes]
        self.sink: InboundSink | None = None
        self._paused_until = 0.0
        self._ref = random.randrange(0x10000)
        self._other_parts: OrderedDict[str, None] = OrderedDict()
        self._rr = 0

    def __repr__(self) -> str:
        return f"SmppConnector(name={self.name!r}, host={self.opts.bind.host!r}, port={self.opts.bind.port})"

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, sink: InboundSink) -> None:
        self.sink = sink
        for k in self.keepers:
            k.start()

    async def close(self) -> None:
        await asyncio.gather(*(k.stop() for k in self.keepers))
        BINDS_UP.labels(self.name).set(0)

    def _bind_changed(self) -> None:
        BINDS_UP.labels(self.name).set(sum(1 for k in self.keepers if k.state == "up"))

    def health(self) -> dict[str, Any]:
        up = [k for k in self.keepers if k.state == "up"]
        return {"ok": any(k.mode in ("trx", "tx") for k in up), "binds_up": len(up),
                "binds": {k.name: k.state if k.state == "up" else f"down: {k.last_error}"
                          for k in self.keepers}}

    def is_up(self) -> bool:
        return any(k.session is not None and k.session.can_submit for k in self.keepers)

    # -- submission -----------------------------------------------------------------------------
    def _session(self) -> Session:
        ready = [k.session for k in self.keepers if k.session is not None and k.session.can_submit]
        if not ready:
            reasons = "; ".join(sorted({k.last_error for k in self.keepers if k.last_error}))
            raise ConnectionFailed(f"no SMPP bind up ({reasons or 'binding'})")
        self._rr += 1
        return min(ready, key=lambda s: (s.in_flight, (id(s) + self._rr) % 7))

    def _pdus(self, sub: Submission) -> list[P.ShortMessage]:
        o = self.opts
        dc = T.choose_coding(sub.text, prefer_latin1=o.prefer_latin1)
        packed = o.gsm_packed and dc == T.DC_DEFAULT
        src = sub.sender or ""
        if o.source_ton is not None:
            s_ton, s_npi = int(o.source_ton), int(o.source_npi or 0)
        elif src.startswith("+"):
            s_ton, s_npi = 1, 1
        elif src and not src.isdigit():
            s_ton, s_npi = 5, 0  # alphanumeric sender
        else:
            s_ton, s_npi = 0, int(o.source_npi or 0)
        fields = dict(
            source_addr=src.lstrip("+"), destination_addr=sub.to.lstrip("+"),
            service_type=o.service_type, source_addr_ton=s_ton, source_addr_npi=s_npi,
            dest_addr_ton=o.dest_ton, dest_addr_npi=o.dest_npi, registered_delivery=1,
            data_coding=dc)
        # One part when the whole text fits: septets (one per octet unpacked), else octets.
        if dc == T.DC_DEFAULT:
            septets = T.gsm_septets(sub.text)
            units, whole = len(septets), T.pack7(septets) if packed else septets
        else:
            whole = T.encode(sub.text, dc)
            units = len(whole)
        if units <= T.capacity(dc):
            return [P.ShortMessage(P.SUBMIT_SM, short_message=whole, **fields)]
        base = P.ShortMessage(P.SUBMIT_SM, **fields)
        if o.long_messages == "payload":
            return [_with(base, tlvs=(P.Tlv(P.TAG_MESSAGE_PAYLOAD, T.encode(sub.text, dc)),))]
        self._ref = (self._ref + 1) & 0xFFFF
        if o.long_messages == "sar":
            pieces = T.split(sub.text, dc, T.capacity(dc))
            return [_with(base, short_message=T.encode(p, dc, packed=packed), tlvs=(
                P.Tlv.int(P.TAG_SAR_MSG_REF_NUM, self._ref, 2),
                P.Tlv.int(P.TAG_SAR_TOTAL_SEGMENTS, len(pieces), 1),
                P.Tlv.int(P.TAG_SAR_SEGMENT_SEQNUM, i, 1))) for i, p in enumerate(pieces, 1)]
        sixteen = o.long_messages == "udh16"
        ref = self._ref if sixteen else self._ref & 0xFF
        pieces = T.split(sub.text, dc, T.capacity(dc, T.UDH16_LEN if sixteen else T.UDH8_LEN))
        return [_with(base, esm_class=T.ESM_UDHI, short_message=T.udh_body(
            T.udh(T.Concat(ref, len(pieces), i), sixteen), p, dc, packed))
            for i, p in enumerate(pieces, 1)]

    async def submit(self, sub: Submission) -> SubmitResult:
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            raise Throttled(wait, "SMSC asked to slow down (ESME_RTHROTTLED/ESME_RMSGQFUL)")
        try:
            pdus = self._pdus(sub)
        except (T.TextError, P.PduError) as exc:
            raise RejectedByCarrier(f"cannot encode for SMPP: {exc}") from None
        first: str | None = None
        for n, sm in enumerate(pdus):
            session = self._session()
            try:
                resp = await session.submit(sm)
            except NotBound as exc:
                raise ConnectionFailed(str(exc)) from None
            except (ConnectionLost, ResponseTimeout) as exc:
                # Written but unanswered: the SMSC may have it; retrying may send it twice.
                raise TransientError(f"submit_sm unanswered: {exc}") from None
            except NackError as exc:
                raise RejectedByCarrier(f"SMSC answered {exc}") from None
            if resp.status != P.ESME_ROK:
                self._refused(resp.status, n, len(pdus))
            cid = self.ids.submitted(resp.message_id) if first is None else resp.message_id.strip()
            if first is None:
                first = cid
            else:
                self._other_parts[self.ids.submitted(cid)] = None
                while len(self._other_parts) > 100_000:
                    self._other_parts.popitem(last=False)
        assert first is not None
        if not first:
            raise TransientError("submit_sm_resp without a message_id: receipts could not be matched")
        return SubmitResult(carrier_message_id=first, carrier=self.name)

    def _refused(self, status: int, part: int, parts: int) -> None:
        name = f"{P.status_name(status)} (0x{status:08X})"
        where = f" at part {part + 1} of {parts}" if parts > 1 else ""
        if status in THROTTLING:
            self._paused_until = time.monotonic() + self.opts.throttle_pause_s
            raise Throttled(self.opts.throttle_pause_s, f"SMSC answered {name}{where}")
        if status in TRANSIENT:
            raise TransientError(f"SMSC answered {name}{where}")
        raise RejectedByCarrier(f"SMSC refused: {name}{where}")

    # -- inbound --------------------------------------------------------------------------------
    async def on_deliver(self, sm: P.ShortMessage) -> int:
        """A deliver_sm -> the deliver_sm_resp status, after the broker took what it carried."""
        if self.sink is None:
            return P.ESME_RX_T_APPN
        kind = "receipt" if R.is_receipt(sm) else "mo"
        try:
            if kind == "receipt":
                await self._receipt(sm)
            else:
                await self._mo(sm)
        except (ValueError, T.TextError) as exc:
            # Unreadable for good: a retry would not read better. Answered so the SMSC stops.
            INBOUND.labels(self.name, kind, "refused").inc()
            log.warning("carrier %s: refusing a deliver_sm (%s) from %s: %s", self.name, kind,
                        sm.source_addr, exc)
            return 0x65  # ESME_RX_P_APPN: permanent application error
        INBOUND.labels(self.name, kind, "published").inc()
        return P.ESME_ROK

    async def _receipt(self, sm: P.ShortMessage) -> None:
        assert self.sink is not None
        r = R.parse(sm)
        cid = self.ids.receipt(r.message_id)
        if cid in self._other_parts:
            return  # a later part of a long message: the message is tracked by its first part
        reported = r.done_at.isoformat(timespec="milliseconds").replace("+00:00", "Z") if r.done_at \
            else now_iso()
        event = new_event("sms.delivery", carrier=self.name, carrier_message_id=cid[:128],
                          status=r.status, error_code=r.error_code, reported_at=reported)
        await self.sink.publish(SMS_DELIVERY, cid, event)

    async def _mo(self, sm: P.ShortMessage) -> None:
        assert self.sink is not None
        sender = subscriber_number(sm.source_addr, sm.source_addr_ton, self.opts.national_country_code)
        to = sm.destination_addr
        if sm.dest_addr_ton == 1 and to.isdigit() and len(to) >= 10:
            to = "+" + to  # an international number; shorter ones are the platform's short codes
        dc = sm.data_coding
        concat: T.Concat | None = None
        payload = sm.tlv(P.TAG_MESSAGE_PAYLOAD)
        if payload is not None:
            text = T.decode(payload.value, dc)
        elif sm.esm_class & T.ESM_UDHI:
            text, concat = T.decode_with_udh(sm.short_message, dc, packed=self.opts.gsm_packed)
        else:
            text = T.decode(sm.short_message, dc, packed=self.opts.gsm_packed)
        ref = sm.tlv(P.TAG_SAR_MSG_REF_NUM)
        if concat is None and ref is not None:
            total, seq = sm.tlv(P.TAG_SAR_TOTAL_SEGMENTS), sm.tlv(P.TAG_SAR_SEGMENT_SEQNUM)
            if total is None or seq is None:
                raise ValueError("SAR reference without total/sequence TLVs")
            concat = T.Concat(ref.as_int(), total.as_int(), seq.as_int())
        encoding = "ucs2" if dc == T.DC_UCS2 else "gsm7"
        fields: dict[str, Any] = {"from": sender}
        if concat is not None and concat.total > 1:
            if not 1 <= concat.seq <= concat.total:
                raise ValueError(f"part {concat.seq} of {concat.total}")
            ref_key = f"smpp{concat.ref}"
            texts = await self.sink.collect_part(self.name, sender, ref_key, concat.seq,
                                                 concat.total, text)
            if texts is None:
                return  # stored; the part that completes the text publishes it
            text = "".join(texts)
            mid = stable_uuid(_MO_NS, f"{self.name}\x1f{sender}\x1f{ref_key}")
            fields.update(parts=len(texts), carrier_message_id=f"concat-{ref_key}")
        else:
            mid = str(uuid.uuid4())
            fields["carrier_message_id"] = f"smpp-{mid}"
        if not text:
            raise ValueError("empty MO text")
        event = new_event("sms.inbound", message_id=mid, carrier=self.name, to=to, text=text,
                          received_at=now_iso(), encoding=encoding, **fields)
        await self.sink.publish(SMS_INBOUND, sender, event)
        if concat is not None and concat.total > 1:
            await self.sink.drop_parts(self.name, sender, f"smpp{concat.ref}")


def _with(sm: P.ShortMessage, **changes: Any) -> P.ShortMessage:
    return replace(sm, **changes)


def subscriber_number(addr: str, ton: int, country_code: str = "") -> str:
    """An MO sender in E.164. SMSCs send international numbers without the '+' (TON 1), and
    many send national ones (TON 2, or TON 0 with the trunk prefix 0): those need the carrier's
    ``national_country_code``. Short codes and alphanumeric senders are refused: Herald's
    subscribers are E.164 numbers, and a reply to them could not be sent."""
    digits = addr.strip().lstrip("+")
    if not digits.isdigit():
        raise ValueError(f"MO sender {addr!r} is not a subscriber number")
    if ton != 1 and not addr.startswith("+"):
        if ton == 0 and digits.startswith("00"):
            digits = digits[2:]  # international call prefix
        elif ton == 2 or (ton == 0 and digits.startswith("0")):
            if not country_code:
                raise ValueError(f"MO sender {addr!r} (TON {ton}) is national: it needs the "
                                 "carrier's national_country_code")
            digits = country_code + digits.removeprefix("0")  # trunk prefix dropped
    if digits.startswith("0") or not 7 <= len(digits) <= 15:
        raise ValueError(f"MO sender {addr!r} (TON {ton}) is not an international number")
    return "+" + digits
