"""SMPP 3.4 PDUs: the header, the bodies Herald's ESME sends and receives, and TLVs.

``encode(pdu) -> bytes`` and ``decode(frame) -> pdu`` are exact inverses for every PDU here
(a property test holds them to it). A malformed frame raises ``PduError`` carrying the
command_status a ``generic_nack`` (or the response) should answer with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")
HEADER_LEN = HEADER.size
MAX_PDU = 64 * 1024  # larger frames are refused: message_payload tops out under 64 KiB

RESP = 0x80000000
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
BIND_RECEIVER_RESP = BIND_RECEIVER | RESP
BIND_TRANSMITTER_RESP = BIND_TRANSMITTER | RESP
SUBMIT_SM_RESP = SUBMIT_SM | RESP
DELIVER_SM_RESP = DELIVER_SM | RESP
UNBIND_RESP = UNBIND | RESP
BIND_TRANSCEIVER_RESP = BIND_TRANSCEIVER | RESP
ENQUIRE_LINK_RESP = ENQUIRE_LINK | RESP

COMMAND_NAMES = {
    GENERIC_NACK: "generic_nack", BIND_RECEIVER: "bind_receiver", BIND_TRANSMITTER: "bind_transmitter",
    SUBMIT_SM: "submit_sm", DELIVER_SM: "deliver_sm", UNBIND: "unbind",
    BIND_TRANSCEIVER: "bind_transceiver", ENQUIRE_LINK: "enquire_link",
    BIND_RECEIVER_RESP: "bind_receiver_resp", BIND_TRANSMITTER_RESP: "bind_transmitter_resp",
    SUBMIT_SM_RESP: "submit_sm_resp", DELIVER_SM_RESP: "deliver_sm_resp", UNBIND_RESP: "unbind_resp",
    BIND_TRANSCEIVER_RESP: "bind_transceiver_resp", ENQUIRE_LINK_RESP: "enquire_link_resp",
}
BINDS = (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER)

# command_status values (SMPP 3.4 section 5.1.3) Herald names in logs and failure reasons.
STATUS_NAMES = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x06: "ESME_RINVPRTFLG", 0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL", 0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP", 0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG", 0x42: "ESME_RINVSUBREP", 0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL", 0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP", 0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID", 0x64: "ESME_RX_T_APPN", 0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL", 0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN", 0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64
ESME_RINVOPTPARSTREAM = 0xC0
ESME_RUNKNOWNERR = 0xFF


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08X}")


# TLV tags (SMPP 3.4 section 5.3.2) Herald reads or writes.
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_SC_INTERFACE_VERSION = 0x0210
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_MESSAGE_STATE = 0x0427
TAG_USER_MESSAGE_REFERENCE = 0x0204


class PduError(Exception):
    """A frame that is not a valid PDU; ``status`` is what to answer it with."""

    def __init__(self, reason: str, status: int = ESME_RINVCMDLEN) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes

    @staticmethod
    def int(tag: int, value: int, size: int) -> Tlv:
        return Tlv(tag, value.to_bytes(size, "big"))

    @staticmethod
    def cstring(tag: int, value: str) -> Tlv:
        return Tlv(tag, value.encode("latin-1") + b"\x00")

    def as_int(self) -> int:
        return int.from_bytes(self.value, "big")

    def as_cstring(self) -> str:
        return self.value.split(b"\x00", 1)[0].decode("latin-1")


def find_tlv(tlvs: tuple[Tlv, ...], tag: int) -> Tlv | None:
    return next((t for t in tlvs if t.tag == tag), None)


@dataclass(frozen=True)
class Bind:
    command_id: int  # BIND_TRANSMITTER, BIND_RECEIVER or BIND_TRANSCEIVER
    system_id: str
    password: str = field(default="", repr=False)
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    sequence: int = 0
    status: int = 0


@dataclass(frozen=True)
class BindResp:
    command_id: int
    system_id: str = ""
    tlvs: tuple[Tlv, ...] = ()
    sequence: int = 0
    status: int = 0


@dataclass(frozen=True)
class ShortMessage:
    """submit_sm (ESME -> SMSC) and deliver_sm (SMSC -> ESME) share one body."""

    command_id: int  # SUBMIT_SM or DELIVER_SM
    source_addr: str = ""
    destination_addr: str = ""
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: tuple[Tlv, ...] = ()
    sequence: int = 0
    status: int = 0

    def tlv(self, tag: int) -> Tlv | None:
        return find_tlv(self.tlvs, tag)


@dataclass(frozen=True)
class MessageIdResp:
    """submit_sm_resp and deliver_sm_resp. An error submit_sm_resp carries no body."""

    command_id: int
    message_id: str = ""
    sequence: int = 0
    status: int = 0


@dataclass(frozen=True)
class Empty:
    """Header-only PDUs: enquire_link(_resp), unbind(_resp), generic_nack."""

    command_id: int
    sequence: int = 0
    status: int = 0


Pdu = Bind | BindResp | ShortMessage | MessageIdResp | Empty
_EMPTY = {ENQUIRE_LINK, ENQUIRE_LINK_RESP, UNBIND, UNBIND_RESP, GENERIC_NACK}
# Longest C-octet strings, terminator included (SMPP 3.4 section 4).
_MAX = {"system_id": 16, "password": 9, "system_type": 13, "address_range": 41, "service_type": 6,
        "addr": 21, "time": 17, "message_id": 65}


def _cstr(value: str, name: str, limit_key: str | None = None) -> bytes:
    raw = value.encode("latin-1")
    limit = _MAX[limit_key or name]
    if b"\x00" in raw or len(raw) + 1 > limit:
        raise PduError(f"{name} {value!r} is longer than {limit - 1} octets or holds NUL",
                       ESME_RSYSERR)
    return raw + b"\x00"


def _tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    return b"".join(struct.pack(">HH", t.tag, len(t.value)) + t.value for t in tlvs)


def _body(pdu: Pdu) -> bytes:
    if isinstance(pdu, Bind):
        return (_cstr(pdu.system_id, "system_id") + _cstr(pdu.password, "password")
                + _cstr(pdu.system_type, "system_type")
                + bytes((pdu.interface_version, pdu.addr_ton, pdu.addr_npi))
                + _cstr(pdu.address_range, "address_range"))
    if isinstance(pdu, BindResp):
        if pdu.status and not pdu.system_id and not pdu.tlvs:
            return b""
        return _cstr(pdu.system_id, "system_id") + _tlvs(pdu.tlvs)
    if isinstance(pdu, ShortMessage):
        if len(pdu.short_message) > 254:
            raise PduError("short_message is longer than 254 octets: use message_payload",
                           ESME_RINVMSGLEN)
        return (_cstr(pdu.service_type, "service_type")
                + bytes((pdu.source_addr_ton, pdu.source_addr_npi))
                + _cstr(pdu.source_addr, "source_addr", "addr")
                + bytes((pdu.dest_addr_ton, pdu.dest_addr_npi))
                + _cstr(pdu.destination_addr, "destination_addr", "addr")
                + bytes((pdu.esm_class, pdu.protocol_id, pdu.priority_flag))
                + _cstr(pdu.schedule_delivery_time, "schedule_delivery_time", "time")
                + _cstr(pdu.validity_period, "validity_period", "time")
                + bytes((pdu.registered_delivery, pdu.replace_if_present_flag, pdu.data_coding,
                         pdu.sm_default_msg_id, len(pdu.short_message)))
                + pdu.short_message + _tlvs(pdu.tlvs))
    if isinstance(pdu, MessageIdResp):
        # An error submit_sm_resp has no body; deliver_sm_resp always has its (empty) message_id:
        # jSMPP, among others, cannot read one without it.
        if pdu.status and not pdu.message_id and pdu.command_id == SUBMIT_SM_RESP:
            return b""
        return _cstr(pdu.message_id, "message_id")
    return b""


def encode(pdu: Pdu, sequence: int | None = None) -> bytes:
    """The PDU's bytes; ``sequence`` in its header instead of ``pdu.sequence`` when given (a
    session numbers its requests as it writes them)."""
    body = _body(pdu)
    return HEADER.pack(HEADER_LEN + len(body), pdu.command_id, pdu.status,
                       pdu.sequence if sequence is None else sequence) + body


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def cstr(self, name: str, limit_key: str | None = None) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise PduError(f"{name} is not NUL-terminated", ESME_RINVCMDLEN)
        if end - self.pos + 1 > _MAX[limit_key or name]:
            raise PduError(f"{name} is longer than {_MAX[limit_key or name] - 1} octets",
                           ESME_RINVCMDLEN)
        raw, self.pos = self.data[self.pos:end], end + 1
        return raw.decode("latin-1")

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise PduError("body ends early", ESME_RINVCMDLEN)
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError("body ends early", ESME_RINVCMDLEN)
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def tlvs(self) -> tuple[Tlv, ...]:
        out = []
        while self.pos < len(self.data):
            if self.pos + 4 > len(self.data):
                raise PduError("truncated TLV header", ESME_RINVOPTPARSTREAM)
            tag, length = struct.unpack_from(">HH", self.data, self.pos)
            self.pos += 4
            if self.pos + length > len(self.data):
                raise PduError(f"TLV 0x{tag:04X} runs past the PDU", ESME_RINVOPTPARSTREAM)
            out.append(Tlv(tag, self.data[self.pos:self.pos + length]))
            self.pos += length
        return tuple(out)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def parse_header(head: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number), length checked."""
    length, cid, status, seq = HEADER.unpack(head)
    if length < HEADER_LEN or length > MAX_PDU:
        raise PduError(f"command_length {length} out of range", ESME_RINVCMDLEN)
    return length, cid, status, seq


def decode(frame: bytes) -> Pdu:
    if len(frame) < HEADER_LEN:
        raise PduError("shorter than a PDU header", ESME_RINVCMDLEN)
    length, cid, status, seq = parse_header(frame[:HEADER_LEN])
    if length != len(frame):
        raise PduError(f"command_length {length} but {len(frame)} octets", ESME_RINVCMDLEN)
    r = _Reader(frame[HEADER_LEN:])
    if cid in _EMPTY:
        return Empty(cid, seq, status)
    if cid in BINDS:
        pdu: Pdu = Bind(cid, r.cstr("system_id"), r.cstr("password"), r.cstr("system_type"),
                        r.u8(), r.u8(), r.u8(), r.cstr("address_range"), seq, status)
    elif cid in (BIND_RECEIVER_RESP, BIND_TRANSMITTER_RESP, BIND_TRANSCEIVER_RESP):
        if r.done:
            return BindResp(cid, "", (), seq, status)
        pdu = BindResp(cid, r.cstr("system_id"), r.tlvs(), seq, status)
    elif cid in (SUBMIT_SM, DELIVER_SM):
        service_type = r.cstr("service_type")
        src_ton, src_npi = r.u8(), r.u8()
        src = r.cstr("source_addr", "addr")
        dst_ton, dst_npi = r.u8(), r.u8()
        dst = r.cstr("destination_addr", "addr")
        esm, pid, prio = r.u8(), r.u8(), r.u8()
        sched = r.cstr("schedule_delivery_time", "time")
        validity = r.cstr("validity_period", "time")
        reg, replace, dc, default_id, sm_len = r.u8(), r.u8(), r.u8(), r.u8(), r.u8()
        sm = r.take(sm_len)
        pdu = ShortMessage(cid, src, dst, sm, service_type, src_ton, src_npi, dst_ton, dst_npi, esm,
                           pid, prio, sched, validity, reg, replace, dc, default_id, r.tlvs(), seq,
                           status)
    elif cid in (SUBMIT_SM_RESP, DELIVER_SM_RESP):
        if r.done:
            return MessageIdResp(cid, "", seq, status)
        # SMPP 5.0 SMSCs (jSMPP among them) may append TLVs here; 3.4 defines none to read.
        return MessageIdResp(cid, r.cstr("message_id"), seq, status)
    else:
        raise PduError(f"command_id 0x{cid:08X} is not supported", ESME_RINVCMDID)
    if not r.done:
        raise PduError(f"{len(r.data) - r.pos} octets after the body of "
                       f"{COMMAND_NAMES[cid]}", ESME_RINVCMDLEN)
    return pdu


def command_name(cid: int) -> str:
    return COMMAND_NAMES.get(cid, f"0x{cid:08X}")
