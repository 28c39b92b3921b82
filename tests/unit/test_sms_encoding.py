import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.sms_encoding import (
    GSM7_BASIC_CHARS,
    GSM7_EXTENSION_CHARS,
    Segmentation,
    decode_carrier_text,
    is_gsm7,
    segment,
)

HAN = "你"
EMOJI = "👋"  # outside the BMP: one code point, two UTF-16 code units


def lengths(seg: Segmentation) -> list[int]:
    return [len(p) for p in seg.parts]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("Hello, world! @£$¥ èéùìò", True),
        ("Braces {} and € cost two septets", True),
        ("ΔΦΓΛΩΠΨΣΘΞ ÄÖÑÜ§¿äöñüà", True),
        ("ç lower-case c-cedilla is not in the basic table", False),
        ("你好", False),
        ("wave " + EMOJI, False),
        ("\x1b is the escape code, not a character", False),
    ],
)
def test_is_gsm7_accepts_exactly_the_gsm_03_38_tables(text, expected):
    assert is_gsm7(text) is expected


def test_gsm_tables_have_the_standard_sizes():
    assert len(GSM7_BASIC_CHARS) == 127
    assert len(GSM7_EXTENSION_CHARS) == 10


@pytest.mark.parametrize(
    ("text", "encoding", "units", "part_lengths"),
    [
        ("", "gsm7", 0, [0]),
        ("a" * 160, "gsm7", 160, [160]),
        ("a" * 161, "gsm7", 161, [153, 8]),
        ("a" * 306, "gsm7", 306, [153, 153]),
        ("a" * 307, "gsm7", 307, [153, 153, 1]),
        # extension characters cost 2 septets: 80 of them fill a single message exactly
        ("€" * 80, "gsm7", 160, [80]),
        ("€" * 81, "gsm7", 162, [76, 5]),
        # 152 septets then '{': the escape pair does not fit in 153, so it opens part 2
        ("a" * 152 + "{" + "b" * 10, "gsm7", 164, [152, 11]),
        # 151 septets then '{' fits exactly
        ("a" * 151 + "{" + "b" * 10, "gsm7", 163, [152, 10]),
        (HAN * 70, "ucs2", 70, [70]),
        (HAN * 71, "ucs2", 71, [67, 4]),
        (HAN * 300, "ucs2", 300, [67, 67, 67, 67, 32]),
        (EMOJI * 35, "ucs2", 70, [35]),
        # 66 units then an emoji: its surrogate pair does not fit in 67, so it opens part 2
        (HAN * 66 + EMOJI + HAN * 5, "ucs2", 73, [66, 6]),
        (HAN * 65 + EMOJI + HAN * 5, "ucs2", 72, [66, 5]),
        # one non-GSM character makes the whole message UCS-2
        ("a" * 69 + "ç", "ucs2", 70, [70]),
    ],
)
def test_segment_counts_units_and_splits_at_the_limits(text, encoding, units, part_lengths):
    seg = segment(text)
    assert seg.encoding == encoding
    assert seg.units == units
    assert lengths(seg) == part_lengths
    assert seg.count == len(part_lengths)
    assert "".join(seg.parts) == text


def test_extension_escape_pair_is_never_split_at_the_part_boundary():
    seg = segment("a" * 152 + "[" + "b" * 10)
    assert seg.parts[0] == "a" * 152
    assert seg.parts[1].startswith("[")


def test_emoji_surrogate_pair_is_never_split_at_the_part_boundary():
    seg = segment(HAN * 66 + EMOJI + HAN * 5)
    assert seg.parts[0] == HAN * 66
    assert seg.parts[1].startswith(EMOJI)
    for part in seg.parts:
        part.encode("utf-16-be")  # no lone surrogates


def _units(part: str, encoding: str) -> int:
    if encoding == "gsm7":
        return sum(2 if ch in GSM7_EXTENSION_CHARS else 1 for ch in part)
    return len(part.encode("utf-16-be")) // 2


gsm_text = st.text(alphabet=sorted(GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS), max_size=500)
any_text = st.text(max_size=400)


@given(st.one_of(gsm_text, any_text))
def test_segment_parts_always_join_back_to_the_text_and_respect_limits(text):
    seg = segment(text)
    assert "".join(seg.parts) == text
    assert seg.units == _units(text, seg.encoding)
    single, part = (160, 153) if seg.encoding == "gsm7" else (70, 67)
    if seg.count == 1:
        assert seg.units <= single
    else:
        assert seg.units > single
        assert all(0 < _units(p, seg.encoding) <= part for p in seg.parts)


@pytest.mark.parametrize(
    ("payload", "coding", "expected"),
    [
        ("hello", None, "hello"),
        ("hello", "gsm7", "hello"),
        ("你好", "text", "你好"),
        ("你好".encode(), "text", "你好"),
        ("4F60597DD83DDC4B", "ucs2", "你好👋"),
        ("4f60597dd83ddc4b", "UCS2", "你好👋"),
        (b"4F60597DD83DDC4B", "ucs2", "你好👋"),
        ("FEFF4F60597D", "ucs2", "你好"),
        ("e4bda0e5a5bd", "utf8-hex", "你好"),
        ("", "ucs2", ""),
    ],
)
def test_decode_carrier_text_decodes_each_coding(payload, coding, expected):
    assert decode_carrier_text(payload, coding) == expected


@pytest.mark.parametrize(
    ("payload", "coding", "reason"),
    [
        ("4F6", "ucs2", "odd number of hex digits"),
        ("4F60ZZ", "ucs2", "not valid hex"),
        ("4F6059", "ucs2", "odd number of bytes"),
        ("D83D", "ucs2", "not valid UTF-16BE"),  # lone high surrogate
        ("e4bd", "utf8-hex", "not valid UTF-8"),
        ("你好", "utf8-hex", "not valid hex"),
        (b"\xff\xfe", "text", "not valid UTF-8"),
        ("hello", "latin1", "unknown coding"),
    ],
)
def test_decode_carrier_text_rejects_bad_payloads_with_a_reason(payload, coding, reason):
    with pytest.raises(ValueError, match=reason):
        decode_carrier_text(payload, coding)
