"""Receipt ids in the submit_sm_resp's form, whatever the carrier writes in its receipts."""

from __future__ import annotations

import pytest

from services.carriers.smpp.receipt import IdMatcher, canonical, convert


@pytest.mark.parametrize("raw, form, expected", [
    ("00A1B2C3D4", "hex", "a1b2c3d4"), ("a1b2c3d4", "hex", "a1b2c3d4"), ("0000004275", "decimal", "4275"),
    (" 4275 ", "decimal", "4275"), ("xyz", "hex", None), ("12ab", "decimal", None), ("Ab-01", "text", "Ab-01"),
])
def test_an_id_is_canonical_in_its_form(raw, form, expected):
    assert canonical(raw, form) == expected


def test_a_decimal_receipt_id_becomes_the_hex_submit_id():
    assert convert("2712847316", "decimal", "hex") == "a1b2c3d4"
    assert convert("A1B2C3D4", "hex", "decimal") == "2712847316"
    assert convert("x-1", "decimal", "hex") is None


def test_configured_forms_match_hex_submits_to_decimal_receipts_from_the_first_receipt():
    m = IdMatcher("c", submit_form="hex", receipt_form="decimal")
    assert m.submitted("00A1B2C3D4") == m.receipt("2712847316") == "a1b2c3d4"


def test_case_and_leading_zeros_never_keep_a_receipt_from_its_message():
    m = IdMatcher("c")
    assert m.receipt("00A1B2C3D4") == m.submitted("a1b2c3d4")


def test_auto_detects_hex_submits_with_decimal_receipts_and_then_converts_ids_it_never_saw(caplog):
    caplog.set_level("INFO", logger="herald.egress.smpp")
    m = IdMatcher("jsmpp")
    for n in (0x1F2E3D4C5B, 0x00ABCDEF12, 0x123456):  # the last one is digits only in hex
        cid = m.submitted(format(n, "010X"))
        assert m.receipt(str(n)) == cid
    assert m.pair == ("hex", "decimal")
    assert "receipt ids detected" in caplog.text
    # a message another worker submitted: converted by the detected habit
    assert m.receipt(str(0xFEEDBEEF)) == "feedbeef"


def test_auto_keeps_decimal_ids_decimal_when_receipts_use_them_as_given():
    m = IdMatcher("c")
    for n in (1001, 1002, 1003):
        cid = m.submitted(str(n))
        assert m.receipt(f"{n:010d}") == cid == str(n)
    assert m.pair in (("hex", "hex"), ("decimal", "decimal"))
    assert m.receipt("0001004") == "1004"


def test_text_ids_are_matched_as_given():
    m = IdMatcher("c", submit_form="text", receipt_form="text")
    assert m.receipt(" SM-42 ") == m.submitted("SM-42") == "SM-42"


def test_an_unknown_form_is_refused_naming_the_carrier():
    with pytest.raises(ValueError, match="carrier c: receipt id form 'octal'"):
        IdMatcher("c", submit_form="octal")
