"""SMS text encoding: GSM 03.38 detection, segmentation, and decoding of carrier MO payloads.

Pure functions only; no I/O. Limits follow 3GPP TS 23.038 / 23.040: a single message carries
140 octets of user data, i.e. 160 GSM-7 septets or 70 UCS-2 code units; a concatenated part
loses 6 octets to the User Data Header (UDH), leaving 153 septets or 67 code units.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]

GSM7_SINGLE_LIMIT = 160
GSM7_PART_LIMIT = 153
UCS2_SINGLE_LIMIT = 70
UCS2_PART_LIMIT = 67

# GSM 03.38 basic table in code order 0x00..0x7F. 0x1B is the escape to the extension table,
# not a character, so it is left out of the set below.
_GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_GSM7_BASIC_TABLE) == 128

GSM7_BASIC_CHARS: frozenset[str] = frozenset(_GSM7_BASIC_TABLE) - {"\x1b"}
# Extension table: each is sent as ESC + code, so it costs 2 septets.
GSM7_EXTENSION_CHARS: frozenset[str] = frozenset("\x0c^{}\\[~]|€")
_GSM7_CHARS = GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS


@dataclass(frozen=True)
class Segmentation:
    """How a text goes on the air.

    `units` is the total length of the text in the encoding's units: septets for gsm7
    (extension characters count 2), UTF-16 code units for ucs2 (astral characters such as
    emoji count 2). UDH overhead is not included.
    """

    encoding: Encoding
    parts: list[str]
    units: int

    @property
    def count(self) -> int:
        return len(self.parts)


def is_gsm7(text: str) -> bool:
    """True if every character of `text` is in the GSM 03.38 basic or extension table."""
    return _GSM7_CHARS.issuperset(text)


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION_CHARS else 1


def _ucs2_cost(ch: str) -> int:
    # Outside the BMP a character is a UTF-16 surrogate pair.
    return 2 if ord(ch) > 0xFFFF else 1


def segment(text: str) -> Segmentation:
    """Choose the encoding for `text` and split it into the parts a carrier will send.

    GSM-7 is used when every character is in the GSM 03.38 tables, otherwise UCS-2 (UTF-16).
    Parts are cut on character boundaries, so a GSM escape pair or a UTF-16 surrogate pair is
    never split; a part may therefore hold one unit less than the limit. Empty text is one
    empty part. `"".join(result.parts) == text` always holds.
    """
    chars = set(text)
    if chars <= GSM7_BASIC_CHARS and len(text) <= GSM7_SINGLE_LIMIT:  # most texts: one part
        return Segmentation(encoding="gsm7", parts=[text], units=len(text))
    if chars <= _GSM7_CHARS:
        encoding: Encoding = "gsm7"
        cost = _gsm7_cost
        single_limit, part_limit = GSM7_SINGLE_LIMIT, GSM7_PART_LIMIT
    else:
        encoding = "ucs2"
        cost = _ucs2_cost
        single_limit, part_limit = UCS2_SINGLE_LIMIT, UCS2_PART_LIMIT

    costs = [cost(ch) for ch in text]
    units = sum(costs)
    if units <= single_limit:
        return Segmentation(encoding=encoding, parts=[text], units=units)

    parts: list[str] = []
    start = 0
    used = 0
    for i, c in enumerate(costs):
        if used + c > part_limit:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    return Segmentation(encoding=encoding, parts=parts, units=units)


_TEXT_CODINGS = {"gsm7", "text"}


def decode_carrier_text(payload: str | bytes, coding: str | None) -> str:
    """Turn an inbound (MO) payload as a carrier delivers it over HTTP into text.

    - `None`, `"gsm7"`, `"text"`: the payload already is the text (bytes are read as UTF-8).
    - `"ucs2"`: hex of UTF-16BE bytes, e.g. `"4F60597D"` for "你好".
    - `"utf8-hex"`: hex of UTF-8 bytes.

    Coding names are case-insensitive. Raises ValueError, saying why, on an unknown coding,
    invalid hex, an odd number of hex digits or bytes, or bytes that do not decode.
    """
    kind = coding.strip().lower() if coding is not None else None
    if kind is None or kind in _TEXT_CODINGS:
        if isinstance(payload, bytes):
            try:
                return payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"text payload is not valid UTF-8: {exc.reason}") from exc
        return payload

    if kind == "ucs2":
        raw = _unhex(payload, kind)
        if len(raw) % 2:
            raise ValueError(f"ucs2 payload has an odd number of bytes ({len(raw)})")
        try:
            text = raw.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            # Typically a lone surrogate: the carrier cut a surrogate pair.
            raise ValueError(f"ucs2 payload is not valid UTF-16BE: {exc.reason}") from exc
        # Some carriers prefix a byte-order mark; it is not part of the message.
        return text.removeprefix("\ufeff")

    if kind == "utf8-hex":
        raw = _unhex(payload, kind)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"utf8-hex payload is not valid UTF-8: {exc.reason}") from exc

    raise ValueError(
        f"unknown coding {coding!r}; expected one of None, 'gsm7', 'text', 'ucs2', 'utf8-hex'"
    )


def _unhex(payload: str | bytes, kind: str) -> bytes:
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{kind} payload is not ASCII hex") from exc
    digits = "".join(payload.split())
    if len(digits) % 2:
        raise ValueError(f"{kind} payload has an odd number of hex digits ({len(digits)})")
    try:
        return binascii.unhexlify(digits)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{kind} payload is not valid hex: {exc}") from exc
