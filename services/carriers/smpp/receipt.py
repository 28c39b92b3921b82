"""Delivery receipts in deliver_sm: the text form (SMPP 3.4 appendix B) and the TLVs, and the
normalisation of receipt ids to the form the submit_sm_resp gave.

Carriers disagree on how a receipt names the message: the submit_sm_resp's id in hex, the
receipt's in decimal (jSMPP's simulator, several real SMSCs), upper- vs lower-case hex,
leading zeros padded to 10 digits. ``IdMatcher`` turns a receipt id into the submit id's form,
by a per-carrier option or, with ``auto``, by detecting the carrier's habit from the receipts
of messages this process submitted.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from .pdu import (
    TAG_MESSAGE_STATE,
    TAG_NETWORK_ERROR_CODE,
    TAG_RECEIPTED_MESSAGE_ID,
    ShortMessage,
)

log = logging.getLogger("herald.egress.smpp")

ESM_TYPE_MASK = 0x3C
ESM_RECEIPT = 0x04  # SMSC delivery receipt
ESM_INTERMEDIATE = 0x20  # intermediate delivery notification

# stat: of the text form, and message_state TLV values -> sms.delivery's vocabulary.
STAT_WORDS = {
    "DELIVRD": "delivered", "DELIVERED": "delivered", "EXPIRED": "expired",
    "DELETED": "undeliverable", "UNDELIV": "undeliverable", "UNDELIVERABLE": "undeliverable",
    "ACCEPTD": "accepted", "ACCEPTED": "accepted", "ENROUTE": "accepted", "UNKNOWN": "unknown",
    "REJECTD": "rejected", "REJECTED": "rejected", "FAILED": "undeliverable",
}
MESSAGE_STATES = {1: "accepted", 2: "delivered", 3: "expired", 4: "undeliverable",
                  5: "undeliverable", 6: "accepted", 7: "unknown", 8: "rejected"}

_FIELD = re.compile(
    r"(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:\s*(.*?)(?=\s+(?:id|sub|dlvrd|submit date|"
    r"done date|stat|err|text)\s*:|$)", re.I | re.S)


@dataclass(frozen=True)
class Receipt:
    message_id: str  # as the receipt wrote it
    status: str  # sms.delivery vocabulary
    error_code: str | None
    done_at: datetime | None


def is_receipt(sm: ShortMessage) -> bool:
    return bool(sm.esm_class & (ESM_RECEIPT | ESM_INTERMEDIATE)) or (
        sm.tlv(TAG_RECEIPTED_MESSAGE_ID) is not None)


def _when(value: str) -> datetime | None:
    """``YYMMDDhhmm[ss]`` (UTC, years 2000-2099) or None; read by slicing: strptime cost more
    than the rest of a receipt together."""
    value = value.strip()
    if len(value) not in (10, 12) or not value.isascii() or not value.isdigit():
        return None
    try:
        return datetime(2000 + int(value[0:2]), int(value[2:4]), int(value[4:6]), int(value[6:8]),
                        int(value[8:10]), int(value[10:12] or 0), tzinfo=UTC)
    except ValueError:
        return None


def parse_text(text: str) -> dict[str, str]:
    return {k.lower(): v.strip() for k, v in _FIELD.findall(text.strip())}


def parse(sm: ShortMessage) -> Receipt:
    """A receipt's id, state, error and time; the TLVs win over the text where both exist."""
    fields = parse_text(sm.short_message.decode("latin-1")) if sm.short_message else {}
    mid = fields.get("id", "")
    status = STAT_WORDS.get(fields.get("stat", "").upper(), "unknown")
    err = fields.get("err") or None
    tlv = sm.tlv(TAG_RECEIPTED_MESSAGE_ID)
    if tlv is not None and tlv.as_cstring():
        mid = tlv.as_cstring()
    tlv = sm.tlv(TAG_MESSAGE_STATE)
    if tlv is not None and tlv.value:
        status = MESSAGE_STATES.get(tlv.as_int(), status)
    tlv = sm.tlv(TAG_NETWORK_ERROR_CODE)
    if tlv is not None and len(tlv.value) == 3:
        # network type (1 ANSI-136, 2 IS-95, 3 GSM, ...) and its 2-octet code
        err = f"{tlv.value[0]}:{int.from_bytes(tlv.value[1:], 'big')}"
    if err is not None and err.strip("0") == "" and status == "delivered":
        err = None
    if not mid:
        raise ValueError("delivery receipt without a message id (no id: field, no "
                         "receipted_message_id TLV)")
    return Receipt(mid.strip(), status, err[:64] if err else None,
                   _when(fields.get("done date", "")))


# -- receipt ids ------------------------------------------------------------------------------

FORMS = ("text", "hex", "decimal")
_HEX = re.compile(r"[0-9a-fA-F]+")
_DEC = re.compile(r"[0-9]+")


def canonical(raw: str, form: str) -> str | None:
    """``raw`` in canonical form if it can be read as ``form``: hex lower-case without leading
    zeros, decimal without leading zeros, text trimmed. None if it cannot."""
    s = raw.strip()
    if form == "hex":
        return format(int(s, 16), "x") if _HEX.fullmatch(s) else None
    if form == "decimal":
        return str(int(s)) if _DEC.fullmatch(s) else None
    return s


def convert(raw: str, receipt_form: str, submit_form: str) -> str | None:
    """A receipt id written in ``receipt_form`` as the canonical id in ``submit_form``; None if
    it cannot be read so."""
    if "text" in (receipt_form, submit_form):
        return raw.strip() if receipt_form == submit_form else None
    value = canonical(raw, receipt_form)
    if value is None:
        return None
    n = int(value, 16 if receipt_form == "hex" else 10)
    return format(n, "x") if submit_form == "hex" else str(n)


# (submit form, receipt form) candidates of ``auto``, in the order ties are broken.
PAIRS = (("hex", "hex"), ("decimal", "decimal"), ("hex", "decimal"), ("decimal", "hex"),
         ("text", "text"))
LOCK_AFTER = 3  # receipts that agree on one habit before it is taken as the carrier's


class IdMatcher:
    """Keeps submit ids and receipt ids in one form.

    ``submit_form``/``receipt_form``: "hex", "decimal", "text" or "auto". What egress records
    as the carrier id is ``submitted(id)``; a receipt is published under ``receipt(id)``.
    With ``auto``, a submit id is recorded as it came (trimmed; hex-looking ids lower-cased and
    stripped of leading zeros, which no carrier uses to tell ids apart), and a receipt id is
    tried in each candidate habit against the ids this process submitted recently; once
    ``LOCK_AFTER`` receipts agree, the habit is fixed (and logged), so receipts of messages
    another worker sent are converted too.
    """

    def __init__(self, carrier: str, submit_form: str = "auto", receipt_form: str = "auto",
                 remember: int = 100_000) -> None:
        for f in (submit_form, receipt_form):
            if f not in (*FORMS, "auto"):
                raise ValueError(f"carrier {carrier}: receipt id form {f!r} is not one of "
                                 f"{', '.join((*FORMS, 'auto'))}")
        self.carrier = carrier
        self.pair: tuple[str, str] | None = None
        if submit_form != "auto" and receipt_form != "auto":
            self.pair = (submit_form, receipt_form)
        self._submit_form, self._receipt_form = submit_form, receipt_form
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._votes: Counter[tuple[str, str]] = Counter()

    def submitted(self, raw: str) -> str:
        if self.pair is not None:
            return canonical(raw, self.pair[0]) or raw.strip()
        cid = _loose(raw)
        self._recent[cid] = None
        if len(self._recent) > self._remember:
            self._recent.popitem(last=False)
        return cid

    def receipt(self, raw: str) -> str:
        if self.pair is not None:
            return convert(raw, self.pair[1], self.pair[0]) or _loose(raw)
        for pair in PAIRS:
            if (self._submit_form != "auto" and pair[0] != self._submit_form) or (
                    self._receipt_form != "auto" and pair[1] != self._receipt_form):
                continue
            cid = convert(raw, pair[1], pair[0])
            if cid is not None:
                cid = _loose(cid)
                if cid in self._recent:
                    self._vote(pair)
                    return cid
        return _loose(raw)

    def _vote(self, pair: tuple[str, str]) -> None:
        self._votes[pair] += 1
        others = sum(self._votes.values()) - self._votes[pair]
        # A chance match of another habit (one id in a hundred thousand) must not win.
        if self._votes[pair] >= LOCK_AFTER and self._votes[pair] >= 10 * others:
            self.pair = pair
            log.info("carrier %s: receipt ids detected: submit_sm_resp ids in %s, receipts in %s "
                     "(set options.submit_id_form/receipt_id_form to fix it)", self.carrier, *pair)


def _loose(raw: str) -> str:
    s = raw.strip()
    return format(int(s, 16), "x") if _HEX.fullmatch(s) else s
