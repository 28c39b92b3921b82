"""The compiled schema check folds an ``anyOf`` of string patterns (an address, a sender) into one
pattern; it must accept and refuse exactly what the reference validator does, for every kind of
value those fields see."""

from __future__ import annotations

import uuid

import pytest

from services.core.schemas import _flatten, _one_pattern, is_valid, new_event, validator

E164 = ["+14155550123", "+8613812345678", "+1234567", "+123456789012345"]
SHORT_CODES = ["123", "10690001", "95588", "00000000"]
ALPHANUMERIC = ["ACME", "Acme Coffee", "A", "abc123", "A1 B2 C3 D4"]
NEVER = ["", "12", "123456789", "+0123", "+1234567890123456", "+1 415 555 0123",
         "1234\n", "+14155550123\n", "ACME\n", " ACME", "ACME ", "Acme Coffee Co", "ac-me",
         "短码", 12345, None, ["10690001"]]

FIELDS = [  # (schema, field, what it may hold besides E.164 and short codes)
    ("codes.submitted", "to", []),
    ("sms.inbound", "to", []),
    ("points.awarded", "reply_from", []),
    ("sms.outbound", "from", ALPHANUMERIC),
]


def event(name: str) -> dict:
    ids = {"event_id": str(uuid.uuid4())}
    if name == "codes.submitted":
        return new_event(name, "acme", submission_id=str(uuid.uuid4()), code="ABCD1234",
                         to="10690001", inbound_message_id=str(uuid.uuid4()),
                         received_at="2026-11-28T10:00:00Z", **{"from": "+8613812345678"}, **ids)
    if name == "points.awarded":
        return new_event(name, "acme", entry_id=str(uuid.uuid4()), member="+8613812345678",
                         points=10, reason="genuine code", source_event_id=str(uuid.uuid4()),
                         reply_from="10690001", **ids)
    if name == "sms.inbound":
        return new_event(name, "acme", message_id=str(uuid.uuid4()), carrier="sim",
                         carrier_message_id="SM1", to="10690001", text="hi",
                         received_at="2026-11-28T10:00:00Z", **{"from": "+8613812345678"}, **ids)
    return new_event(name, "acme", message_id=str(uuid.uuid4()), request_id="r1",
                     to="+8613812345678", text="ok", category="transactional", source="api",
                     priority=5, accepted_at="2026-11-28T10:00:01Z", **{"from": "10690001"}, **ids)


@pytest.mark.parametrize(("name", "field", "extra"), FIELDS)
def test_the_compiled_check_of_an_address_field_agrees_with_the_reference_on_every_value(
        name, field, extra):
    base = event(name)
    assert validator(name).is_valid(base), "the base event is valid"
    for value in E164 + SHORT_CODES + ALPHANUMERIC + NEVER:
        ev = {**base, field: value}
        expected = validator(name).is_valid(ev)
        assert is_valid(name, ev) is expected, f"{name}.{field} = {value!r}"
        if value in E164 + SHORT_CODES + extra:
            assert expected, f"{name}.{field} = {value!r} must be allowed"


@pytest.mark.parametrize(("name", "field", "_extra"), FIELDS)
def test_the_compiled_check_of_an_address_field_is_one_pattern_without_branches(name, field, _extra):
    compiled = _one_pattern(_flatten(name))["properties"][field]
    assert set(compiled) == {"type", "pattern"}, compiled


def test_an_any_of_with_a_branch_that_is_not_a_string_pattern_is_left_as_it_is():
    schema = {"anyOf": [{"const": ""}, {"type": "string", "pattern": "^a$"}]}
    assert _one_pattern(schema) == schema
    assert _one_pattern({"anyOf": [{"type": "string", "pattern": "^a$", "maxLength": 3},
                                   {"type": "string", "pattern": "^b$"}]})["anyOf"]
