"""SMPP short-message text: data codings 0 (GSM 03.38, packed or one septet per octet),
3 (Latin-1) and 8 (UCS-2/UTF-16BE), and long messages cut into parts by UDH (8- or 16-bit
reference), SAR TLVs or one ``message_payload``.

Pure functions; the limits are 3GPP TS 23.038/23.040's 140 octets of user data per part.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core.sms_encoding import _GSM7_BASIC_TABLE

DC_DEFAULT = 0  # SMSC default alphabet: GSM 03.38 here
DC_LATIN1 = 3
DC_UCS2 = 8

ESC = 0x1B
_EXT_TABLE = {0x0A: "\x0c", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
              0x3E: "]", 0x40: "|", 0x65: "€"}
_BASIC = {ch: i for i, ch in enumerate(_GSM7_BASIC_TABLE) if i != ESC}
_EXT = {ch: code for code, ch in _EXT_TABLE.items()}

MAX_OCTETS = 140
UDH8_LEN = 6  # UDHL, IEI 0x00, IEDL 3, ref, total, seq
UDH16_LEN = 7  # UDHL, IEI 0x08, IEDL 4, ref(2), total, seq
ESM_UDHI = 0x40


class TextError(ValueError):
    """Text that cannot be put in (or read from) the asked coding."""


def gsm_septets(text: str) -> bytes:
    """GSM 03.38 septets, one per octet (extension characters as ESC + code)."""
    out = bytearray()
    for ch in text:
        code = _BASIC.get(ch)
        if code is not None:
            out.append(code)
            continue
        code = _EXT.get(ch)
        if code is None:
            raise TextError(f"{ch!r} is not in the GSM 03.38 alphabet")
        out += bytes((ESC, code))
    return bytes(out)


def gsm_text(septets: bytes) -> str:
    out = []
    escaped = False
    for b in septets:
        b &= 0x7F
        if escaped:
            # An unknown extension code reads as the basic table's character (23.038).
            out.append(_EXT_TABLE.get(b, _GSM7_BASIC_TABLE[b] if b != ESC else " "))
            escaped = False
        elif b == ESC:
            escaped = True
        else:
            out.append(_GSM7_BASIC_TABLE[b])
    return "".join(out)


def pack7(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets 8 to 7 octets, starting ``fill_bits`` into the first octet (after a UDH)."""
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits == 1:
        acc |= 0x0D << 1  # 7 spare bits: 23.038 pads them with CR, not '@'
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack7(data: bytes, fill_bits: int = 0, count: int | None = None) -> bytes:
    """Septets from packed octets; ``count`` cuts the padding of the last octet (when known).
    Without it, a final CR that fills the last octet's 7 spare bits is padding (23.038), not
    text."""
    total_bits = len(data) * 8 - fill_bits
    n = total_bits // 7 if count is None else count
    value = int.from_bytes(data, "little") >> fill_bits
    out = bytes((value >> (7 * i)) & 0x7F for i in range(n))
    if count is None and n and total_bits % 7 == 0 and out[-1] == 0x0D:
        out = out[:-1]
    return out


def encode(text: str, data_coding: int, *, packed: bool = False) -> bytes:
    if data_coding == DC_DEFAULT:
        septets = gsm_septets(text)
        return pack7(septets) if packed else septets
    if data_coding == DC_LATIN1:
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise TextError(f"{text[exc.start]!r} is not in Latin-1") from None
    if data_coding == DC_UCS2:
        return text.encode("utf-16-be")
    raise TextError(f"data_coding {data_coding} is not supported")


def decode(data: bytes, data_coding: int, *, packed: bool = False, fill_bits: int = 0) -> str:
    """The text of a short message body (UDH already removed)."""
    if data_coding in (DC_DEFAULT, 0x01, 0xF0) or (data_coding & 0xF0 == 0xF0 and not data_coding & 0x04):
        return gsm_text(unpack7(data, fill_bits) if packed else data)
    if data_coding in (DC_LATIN1, 0x04, 0x02):  # 2/4: octet data, read as Latin-1 to keep bytes
        return data.decode("latin-1")
    if data_coding == DC_UCS2:
        if len(data) % 2:
            raise TextError(f"UCS-2 body has an odd number of octets ({len(data)})")
        try:
            return data.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise TextError(f"UCS-2 body is not valid UTF-16BE: {exc.reason}") from None
    raise TextError(f"data_coding {data_coding:#04x} is not supported")


def choose_coding(text: str, *, prefer_latin1: bool = False) -> int:
    """GSM 03.38 when every character is in it, else Latin-1 if asked and possible, else UCS-2."""
    try:
        gsm_septets(text)
        return DC_DEFAULT
    except TextError:
        pass
    if prefer_latin1:
        try:
            text.encode("latin-1")
            return DC_LATIN1
        except UnicodeEncodeError:
            pass
    return DC_UCS2


# -- long messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Concat:
    """Where one part sits in a concatenated message."""

    ref: int
    total: int
    seq: int


def _char_units(ch: str, data_coding: int) -> int:
    if data_coding == DC_DEFAULT:
        return 2 if ch in _EXT else 1
    if data_coding == DC_UCS2:
        return 4 if ord(ch) > 0xFFFF else 2
    return 1


def capacity(data_coding: int, header_octets: int = 0) -> int:
    """Units (septets, or octets) one part holds after a header of ``header_octets``: 160/153/152
    septets, 140/134/133 octets. Unpacked GSM counts the same septets, one per octet."""
    room = MAX_OCTETS - header_octets
    return room * 8 // 7 if data_coding == DC_DEFAULT else room


def split(text: str, data_coding: int, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` units, never inside an escape pair or a
    surrogate pair."""
    parts: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        c = _char_units(ch, data_coding)
        if used + c > limit:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    return parts


def udh(c: Concat, sixteen_bit: bool) -> bytes:
    if sixteen_bit:
        return bytes((6, 0x08, 4, (c.ref >> 8) & 0xFF, c.ref & 0xFF, c.total, c.seq))
    return bytes((5, 0x00, 3, c.ref & 0xFF, c.total, c.seq))


def parse_udh(data: bytes) -> tuple[Concat | None, bytes, int]:
    """(concatenation info if the UDH has one, the body after the UDH, the UDH's length)."""
    if not data:
        raise TextError("UDHI set on an empty body")
    udhl = data[0]
    if udhl + 1 > len(data):
        raise TextError(f"UDH length {udhl} runs past the body ({len(data)} octets)")
    header, body = data[1:udhl + 1], data[udhl + 1:]
    concat = None
    i = 0
    while i + 2 <= len(header):
        iei, iedl = header[i], header[i + 1]
        ie = header[i + 2:i + 2 + iedl]
        if len(ie) != iedl:
            raise TextError("truncated information element in UDH")
        if iei == 0x00 and iedl == 3:
            concat = Concat(ie[0], ie[1], ie[2])
        elif iei == 0x08 and iedl == 4:
            concat = Concat((ie[0] << 8) | ie[1], ie[2], ie[3])
        i += 2 + iedl
    return concat, body, udhl + 1


def fill_bits_after(header_octets: int) -> int:
    return (7 - (header_octets * 8) % 7) % 7


def udh_body(header: bytes, text: str, data_coding: int, packed: bool) -> bytes:
    if data_coding == DC_DEFAULT and packed:
        return header + pack7(gsm_septets(text), fill_bits_after(len(header)))
    return header + encode(text, data_coding)


def decode_with_udh(data: bytes, data_coding: int, *, packed: bool) -> tuple[str, Concat | None]:
    concat, body, hlen = parse_udh(data)
    if data_coding == DC_DEFAULT and packed:
        return gsm_text(unpack7(body, fill_bits_after(hlen))), concat
    return decode(body, data_coding), concat
