"""The msgspec check of the event schemas (services/core/schema_types.py) may only speed up the
answer: what it accepts the schema accepts, with the same defaults filled in, and what it cannot
judge (a slow field, a value it refuses) goes to the compiled check, which decides as before."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core import schemas
from services.core.schema_types import quick_check

SCHEMA_DIR = Path(schemas.SCHEMA_DIR)
HOT = ["sms.outbound", "sms.status", "sms.delivery", "sms.inbound", "codes.submitted",
       "points.awarded", "optouts"]


def examples(name: str) -> list[dict]:
    return json.loads((SCHEMA_DIR / name / "v1.json").read_text(encoding="utf-8"))["examples"]


def flat(name: str) -> dict:
    return schemas._one_pattern(schemas._flatten(name))


def schema_accepts(name: str, event) -> bool:
    """The compiled check and the reference validator, both (on a copy: the compiled one fills
    in defaults)."""
    try:
        schemas._fast(name)(copy.deepcopy(event))
    except fastjsonschema.JsonSchemaValueException:
        return False
    return schemas.validator(name).is_valid(event)


@pytest.mark.parametrize("name", HOT)
def test_each_hot_schema_has_a_quick_check_that_accepts_its_examples(name):
    quick = quick_check(flat(name), name)
    assert quick is not None
    accepted = [e for e in examples(name) if quick(copy.deepcopy(e))]
    # sms.outbound's first example carries carrier_preference (uniqueItems: a slow field)
    assert len(accepted) >= 1
    assert len(accepted) == len(examples(name)) - (1 if name == "sms.outbound" else 0)


def test_an_event_with_a_slow_field_is_left_to_the_compiled_check_which_still_accepts_it():
    quick = quick_check(flat("sms.outbound"), "sms.outbound")
    ex = next(e for e in examples("sms.outbound") if "carrier_preference" in e)
    assert quick(copy.deepcopy(ex)) is False
    assert schemas.is_valid("sms.outbound", copy.deepcopy(ex))
    doubled = dict(ex, carrier_preference=["sim", "sim"])  # uniqueItems: refused
    assert not schemas.is_valid("sms.outbound", doubled)


def test_a_missing_category_is_filled_in_as_the_compiled_check_fills_it():
    ex = next(e for e in examples("sms.outbound") if "carrier_preference" not in e)
    ex = {k: v for k, v in ex.items() if k != "category"}
    quick, compiled = copy.deepcopy(ex), copy.deepcopy(ex)
    assert quick_check(flat("sms.outbound"), "sms.outbound")(quick)
    schemas._fast("sms.outbound")(compiled)
    assert quick == compiled and quick["category"] == "transactional"


@pytest.mark.parametrize("field, value, valid", [
    ("schema_version", 1.0, True),   # msgspec refuses a float; the compiled check accepts it
    ("schema_version", True, False),
    ("occurred_at", "2026-02-30T10:00:00.000Z", False),  # the pattern allows it, the format not
    ("occurred_at", "2026-02-28T10:00:00.000Z\n", False),
    ("occurred_at", "2026-02-28 10:00:00.000Z", False),
    ("to", "+14155550123\n", False),
    ("segments", 0, False),
    ("segments", 255, True),
    ("status", "lost", False),
    ("reason", None, False),
    ("reason", "x" * 512, True),
    ("reason", "x" * 513, False),
    ("event_type", "sms.inbound", False),
    ("surprise", "x", False),
])
def test_the_answer_for_an_sms_status_is_the_schemas(field, value, valid):
    event = dict(examples("sms.status")[0], **{field: value})
    assert schemas.is_valid("sms.status", copy.deepcopy(event)) is valid
    assert schema_accepts("sms.status", event) is valid
    if not valid:
        assert quick_check(flat("sms.status"), "sms.status")(copy.deepcopy(event)) is False


def _values_for(rules: dict) -> st.SearchStrategy:
    """Values a field may be given: ones its own pattern generates (so most are near the
    boundary of what passes), with a newline or a space added, and anything JSON."""
    anything = st.recursive(
        st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=5)
    rules = schemas_rules(rules)
    pattern = rules.get("pattern")
    if "enum" in rules or "const" in rules:
        near = st.sampled_from(rules.get("enum", [rules.get("const")]))
    elif rules.get("type") == "integer":
        near = st.integers(rules.get("minimum", -5) - 1, rules.get("maximum", 300) + 1)
    elif pattern is None and rules.get("type") == "string":
        lo, hi = rules.get("minLength", 0), rules.get("maxLength", 30)
        near = st.text(min_size=max(0, lo - 1), max_size=min(hi + 1, 40)) | st.text(
            min_size=hi, max_size=hi + 1)
    elif pattern is None:
        return anything
    else:
        near = st.from_regex(re.compile(pattern.replace("$(?!\\n)", r"\Z")), fullmatch=False)
    spoilt = st.one_of(near.map(lambda v: f"{v}\n"), near.map(lambda v: f" {v}"), anything)
    return st.one_of(near, near, spoilt)


def schemas_rules(rules: dict) -> dict:
    out: dict = {}
    for part in rules.get("allOf", [rules]):
        out.update(part)
    return out


@st.composite
def mutated(draw, name: str):
    event = copy.deepcopy(draw(st.sampled_from(examples(name))))
    props = flat(name)["properties"]
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["set", "set", "set", "drop", "add"]))
        key = draw(st.sampled_from(sorted(props)))
        if how == "set":
            event[key] = draw(_values_for(props[key]))
        elif how == "drop":
            event.pop(key, None)
        else:
            event[draw(st.sampled_from(["extra", "Status", "to "]))] = "x"
    return event


@pytest.mark.parametrize("name", ["sms.outbound", "sms.status", "sms.delivery", "sms.inbound"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_what_the_quick_check_accepts_the_schema_accepts_with_the_same_defaults(name, data):
    event = data.draw(mutated(name))
    quick = quick_check(flat(name), name)
    mine, theirs = copy.deepcopy(event), copy.deepcopy(event)
    if quick(mine):
        assert schema_accepts(name, event), event
        schemas._fast(name)(theirs)
        assert mine == theirs
    # whichever way, the answer Herald gives is the schema's
    assert schemas.is_valid(name, copy.deepcopy(event)) is schema_accepts(name, event)
