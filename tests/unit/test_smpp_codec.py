"""The SMPP 3.4 codec: table-driven over testdata/, a round-trip property, and differential
checks against smpp34 (an independent implementation): what Herald encodes, smpp34 decodes to
the same fields, and what smpp34 encodes, Herald decodes to the same fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import smpp34
from hypothesis import given, settings
from hypothesis import strategies as st

from services.carriers.smpp import pdu as P
from services.carriers.smpp import receipt as R
from services.carriers.smpp import text as T

TESTDATA = Path(__file__).resolve().parents[2] / "services/carriers/smpp/testdata"
PDU_FIXTURES = sorted(p for p in TESTDATA.glob("*.json")
                      if p.stem not in ("bad_frames", "text_codings", "receipts"))


def _build(doc: dict) -> P.Pdu:
    fields = dict(doc)
    kind = getattr(P, fields.pop("type"))
    if "tlvs" in fields:
        fields["tlvs"] = tuple(P.Tlv(tag, bytes.fromhex(v)) for tag, v in fields["tlvs"])
    if "short_message" in fields:
        fields["short_message"] = bytes.fromhex(fields["short_message"])
    return kind(**fields)


def test_every_kind_of_pdu_has_a_fixture():
    kinds = {json.loads(p.read_text())["pdu"]["command_id"] for p in PDU_FIXTURES}
    assert kinds >= set(P.COMMAND_NAMES)


@pytest.mark.parametrize("path", PDU_FIXTURES, ids=lambda p: p.stem)
def test_fixture_frame_decodes_to_its_fields_and_encodes_back_to_the_same_octets(path):
    doc = json.loads(path.read_text())
    frame = bytes.fromhex(doc["hex"])
    expected = _build(doc["pdu"])
    assert P.decode(frame) == expected
    assert P.encode(expected) == frame


@pytest.mark.parametrize("case", json.loads((TESTDATA / "bad_frames.json").read_text())["cases"],
                         ids=lambda c: c["name"])
def test_a_malformed_frame_is_refused_with_the_status_to_answer_it(case):
    with pytest.raises(P.PduError) as err:
        P.decode(bytes.fromhex(case["hex"]))
    assert err.value.status == case["status"]


def test_a_string_longer_than_the_spec_allows_is_refused_before_sending():
    with pytest.raises(P.PduError, match="system_id"):
        P.encode(P.Bind(P.BIND_TRANSCEIVER, "a-system-id-too-long"))
    with pytest.raises(P.PduError, match="message_payload"):
        P.encode(P.ShortMessage(P.SUBMIT_SM, short_message=b"x" * 255))


@pytest.mark.parametrize("case", json.loads((TESTDATA / "text_codings.json").read_text())["cases"],
                         ids=lambda c: c["name"])
def test_text_encodes_to_the_expected_octets_and_back(case):
    raw = T.encode(case["text"], case["data_coding"], packed=case["packed"])
    assert raw.hex() == case["hex"]
    assert T.decode(raw, case["data_coding"], packed=case["packed"]) == case["text"]


def test_text_outside_the_asked_alphabet_is_refused_naming_the_character():
    with pytest.raises(T.TextError, match="你"):
        T.encode("你", T.DC_DEFAULT)
    with pytest.raises(T.TextError, match="€"):
        T.encode("€", T.DC_LATIN1)


def test_coding_choice_prefers_gsm_then_latin1_when_asked_then_ucs2():
    assert T.choose_coding("Hello {x}") == T.DC_DEFAULT
    assert T.choose_coding("Grüße â") == T.DC_UCS2
    assert T.choose_coding("Grüße â", prefer_latin1=True) == T.DC_LATIN1
    assert T.choose_coding("你好", prefer_latin1=True) == T.DC_UCS2


@pytest.mark.parametrize("sixteen", [False, True], ids=["8-bit reference", "16-bit reference"])
@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
def test_udh_parts_carry_the_reference_and_read_back_whole(sixteen, packed):
    text = "The quick brown fox jumps over the lazy dog {€} " * 8
    limit = T.capacity(T.DC_DEFAULT, T.UDH16_LEN if sixteen else T.UDH8_LEN)
    assert limit == (152 if sixteen else 153)
    pieces = T.split(text, T.DC_DEFAULT, limit)
    out = []
    for i, piece in enumerate(pieces, 1):
        body = T.udh_body(T.udh(T.Concat(0x1234, len(pieces), i), sixteen), piece, T.DC_DEFAULT, packed)
        assert len(body) <= 140 or not packed
        got, concat = T.decode_with_udh(body, T.DC_DEFAULT, packed=packed)
        assert concat == T.Concat(0x1234 if sixteen else 0x34, len(pieces), i)
        out.append(got)
    assert "".join(out) == text


def test_split_never_cuts_an_escape_or_a_surrogate_pair():
    gsm = "a" * 152 + "€€"
    assert [len(T.gsm_septets(p)) for p in T.split(gsm, T.DC_DEFAULT, 153)] == [152, 4]
    emoji = "x" * 66 + "👋👋"
    parts = T.split(emoji, T.DC_UCS2, 134)
    assert "".join(parts) == emoji and all(len(p.encode("utf-16-be")) <= 134 for p in parts)
    assert parts[0].endswith("x")


@pytest.mark.parametrize("case", json.loads((TESTDATA / "receipts.json").read_text())["cases"],
                         ids=lambda c: c["name"])
def test_a_receipt_reads_as_its_id_state_error_and_time(case):
    sm = P.ShortMessage(P.DELIVER_SM, short_message=case["short_message"].encode("latin-1"),
                        esm_class=case["esm_class"],
                        tlvs=tuple(P.Tlv(t, bytes.fromhex(v)) for t, v in case["tlvs"]))
    assert R.is_receipt(sm)
    got = R.parse(sm)
    exp = case["expect"]
    assert (got.message_id, got.status, got.error_code) == (exp["message_id"], exp["status"],
                                                            exp["error_code"])
    assert (got.done_at.isoformat() if got.done_at else None) == exp["done_at"]


# -- property and differential -----------------------------------------------------------------

cstr = lambda n: st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=n)  # noqa: E731
u8 = st.integers(0, 255)
seq = st.integers(1, 0x7FFFFFFF)
tlvs = st.lists(st.builds(P.Tlv, st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4).map(tuple)
short_messages = st.builds(
    P.ShortMessage, st.sampled_from([P.SUBMIT_SM, P.DELIVER_SM]), cstr(20), cstr(20),
    st.binary(max_size=254), cstr(5), u8, u8, u8, u8, u8, u8, u8, cstr(16), cstr(16), u8, u8, u8,
    u8, tlvs, seq)
pdus = st.one_of(
    short_messages,
    st.builds(P.Bind, st.sampled_from(P.BINDS), cstr(15), cstr(8), cstr(12), u8, u8, u8, cstr(40), seq),
    st.builds(P.BindResp, st.sampled_from([P.BIND_RECEIVER_RESP, P.BIND_TRANSMITTER_RESP,
                                           P.BIND_TRANSCEIVER_RESP]), cstr(15).filter(bool), tlvs, seq),
    st.builds(P.MessageIdResp, st.sampled_from([P.SUBMIT_SM_RESP, P.DELIVER_SM_RESP]), cstr(64),
              seq, st.integers(0, 0xFF)).filter(
        lambda p: p.message_id or not p.status or p.command_id == P.DELIVER_SM_RESP),
    st.builds(P.Empty, st.sampled_from([P.ENQUIRE_LINK, P.ENQUIRE_LINK_RESP, P.UNBIND, P.UNBIND_RESP,
                                        P.GENERIC_NACK]), seq, st.integers(0, 0xFF)),
)


@settings(max_examples=300, deadline=None)
@given(pdus)
def test_any_pdu_decodes_to_what_was_encoded(pdu):
    frame = P.encode(pdu)
    assert P.decode(frame) == pdu
    assert P.encode(P.decode(frame)) == frame


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(T._BASIC) + sorted(T._EXT)), max_size=200),
       st.integers(0, 6))
def test_any_gsm_text_packs_and_unpacks_to_itself(text, fill):
    # A text whose septets end exactly on an octet boundary with a CR reads the CR as 23.038's
    # padding: the spec's own ambiguity, not the codec's.
    septets = T.gsm_septets(text)
    if text.endswith("\r") and (len(septets) * 7 + fill) % 8 == 0:
        return
    assert T.gsm_text(T.unpack7(T.pack7(septets, fill), fill)) == text


def _same_fields(ours: P.ShortMessage, theirs) -> None:
    for name in ("service_type", "source_addr_ton", "source_addr_npi", "source_addr", "dest_addr_ton",
                 "dest_addr_npi", "destination_addr", "esm_class", "protocol_id", "priority_flag",
                 "schedule_delivery_time", "validity_period", "registered_delivery",
                 "replace_if_present_flag", "data_coding", "sm_default_msg_id", "short_message"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.sequence == theirs.sequence_number
    assert [(t.tag, t.value) for t in ours.tlvs] == [(t.tag, t.value) for t in theirs.tlvs]


ascii_cstr = lambda n: st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=n)  # noqa: E731
smpp34_safe = st.builds(
    P.ShortMessage, st.sampled_from([P.SUBMIT_SM, P.DELIVER_SM]), ascii_cstr(20), ascii_cstr(20),
    st.binary(max_size=254), ascii_cstr(5), u8, u8, u8, u8, u8, u8, st.integers(0, 3),
    st.just(""), st.just(""), st.integers(0, 1), st.integers(0, 1), u8, u8,
    st.lists(st.builds(P.Tlv, st.sampled_from([0x001E, 0x020C, 0x020E, 0x020F, 0x0424, 0x0427]),
                       st.binary(min_size=1, max_size=20)), max_size=3).map(tuple), seq)


@settings(max_examples=200, deadline=None)
@given(smpp34_safe)
def test_smpp34_decodes_every_short_message_herald_encodes_to_the_same_fields(pdu):
    theirs = smpp34.decode(P.encode(pdu))
    assert type(theirs).__name__ == ("SubmitSm" if pdu.command_id == P.SUBMIT_SM else "DeliverSm")
    _same_fields(pdu, theirs)
    ours = P.decode(theirs.encode())
    assert ours == pdu


@pytest.mark.parametrize("pdu", [
    P.Bind(P.BIND_TRANSCEIVER, "herald", "secret", "SMPP", 0x34, 1, 1, "86.*", 5),
    P.MessageIdResp(P.SUBMIT_SM_RESP, "00A1B2C3D4", 6),
    P.MessageIdResp(P.DELIVER_SM_RESP, "", 7),
    P.Empty(P.ENQUIRE_LINK, 8), P.Empty(P.UNBIND_RESP, 9), P.Empty(P.GENERIC_NACK, 10, 3),
], ids=lambda p: P.command_name(p.command_id))
def test_smpp34_reads_the_header_and_body_of_every_other_pdu_herald_encodes(pdu):
    frame = P.encode(pdu)
    raw = smpp34.decode(frame)
    assert (raw.command_id, raw.command_status, raw.sequence_number) == (pdu.command_id, pdu.status,
                                                                         pdu.sequence)
    assert raw.body == frame[16:]
