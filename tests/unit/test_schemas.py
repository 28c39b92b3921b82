"""The event schemas under schemas/: each is valid, its examples pass, known-bad events fail.

Schemas are loaded straight from the files (no project code), so this test pins the files
themselves; services/core/schemas.py can take over the loading later.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
BASE_URI = "https://schemas.herald.dev"
EVENT_NAMES = [
    "sms.inbound",
    "sms.outbound",
    "sms.delivery",
    "sms.status",
    "codes.submitted",
    "points.awarded",
    "points.commands",
    "dlq",
    "optouts",
    "metrics.window",
]
SCHEMA_FILES = sorted(SCHEMA_DIR.rglob("*.json"))
DELETE = object()  # marks a field to remove in a variant

UNICODE_TEXT = "你好，世界 👋"
BAD_PHONES = [
    "12345",
    "+0123",
    "+1234567890123456",
    "abc",
    "",
    "+1 415 555 0123",
    "0014155550123",
    "+14155550123\n",
    14155550123,
]
# "12345" is a valid short code, so address fields get their own list.
BAD_ADDRESSES = ["+0123", "+1234567890123456", "abc", "", "12", "123456789", "1234\n", 12345]
BAD_UUIDS = [
    "not-a-uuid",
    "8d1f4a2b3c5e4f608a7b9c0d1e2f3a4b",
    "{8d1f4a2b-3c5e-4f60-8a7b-9c0d1e2f3a4b}",
    "8d1f4a2b-3c5e-4f60-8a7b-9c0d1e2f3a4",
    "8d1f4a2b-3c5e-4f60-8a7b-9c0d1e2f3a4g",
    "8d1f4a2b-3c5e-4f60-8a7b-9c0d1e2f3a4b\n",
    "",
    None,
]
BAD_TENANTS = ["Acme", "acme coffee", "-acme", "_acme", "", "a" * 64, "acme\n", "acmé", 42]
BAD_TIMESTAMPS = [
    "yesterday",
    "2025-03-14",
    "2025-03-14T09:26:53",
    "2025-03-14 09:26:53Z",
    "2025-13-14T09:26:53Z",
    "2025-03-14T24:00:00Z",
    "2025-03-14T09:26:53+0800",
    "٢٠٢٥-03-14T09:26:53Z",
    "2025-03-14T09:26:53Z\n",
    1710408413,
]

# Fields of each event, by the shared format they use.
E164_FIELDS = {
    "sms.inbound": ["from"],
    "sms.outbound": ["to"],
    "sms.status": ["to"],
    "codes.submitted": ["from"],
    "points.awarded": ["member"],
    "points.commands": ["member"],
    "optouts": ["msisdn"],
}
ADDRESS_FIELDS = {
    "sms.inbound": ["to"],
    "codes.submitted": ["to"],
    "points.awarded": ["reply_from"],
    "points.commands": ["reply_from"],
}
UUID_FIELDS = {
    "sms.inbound": ["message_id"],
    "sms.outbound": ["message_id", "in_reply_to"],
    "sms.delivery": ["message_id"],
    "sms.status": ["message_id"],
    "codes.submitted": ["submission_id", "inbound_message_id"],
    "points.awarded": ["entry_id"],
    "points.commands": ["command_id", "inbound_message_id"],
    "dlq": [],
    "optouts": ["source_message_id"],
    "metrics.window": [],
}
TIMESTAMP_FIELDS = {
    "sms.inbound": ["received_at"],
    "sms.outbound": ["accepted_at", "expires_at"],
    "sms.delivery": ["reported_at"],
    "sms.status": ["occurred_at"],
    "codes.submitted": ["received_at"],
    "points.awarded": [],
    "points.commands": [],
    "dlq": ["failed_at"],
    "optouts": ["changed_at"],
    "metrics.window": ["window_start", "window_end", "emitted_at"],
}
TEXT_EVENTS = ["sms.inbound", "sms.outbound"]

# Per-event variants with a wrong type or an out-of-range value: (event, field, value).
WRONG_VALUES = [
    ("sms.inbound", "parts", "2"),
    ("sms.inbound", "parts", 0),
    ("sms.inbound", "parts", 256),
    ("sms.inbound", "encoding", "utf8"),
    ("sms.inbound", "carrier", ""),
    ("sms.inbound", "carrier", 7),
    ("sms.inbound", "carrier_message_id", "x" * 129),
    ("sms.inbound", "keyword", ""),
    ("sms.inbound", "text", ["hello"]),
    ("sms.outbound", "request_id", ""),
    ("sms.outbound", "request_id", "order 88231"),
    ("sms.outbound", "request_id", "r" * 129),
    ("sms.outbound", "from", ""),
    ("sms.outbound", "from", "AcmeCoffee12"),
    ("sms.outbound", "from", " Acme"),
    ("sms.outbound", "from", "Acme!"),
    ("sms.outbound", "category", "promo"),
    ("sms.outbound", "source", "cron"),
    ("sms.outbound", "priority", 10),
    ("sms.outbound", "priority", -1),
    ("sms.outbound", "priority", "5"),
    ("sms.outbound", "priority", 5.5),
    ("sms.outbound", "campaign_id", ""),
    ("sms.outbound", "carrier_preference", "twilio"),
    ("sms.outbound", "carrier_preference", [f"carrier{i}" for i in range(9)]),
    ("sms.outbound", "carrier_preference", ["twilio", "twilio"]),
    ("sms.outbound", "carrier_preference", [""]),
    ("sms.outbound", "attributes", {"order_id": 88231}),
    ("sms.outbound", "attributes", {"note": "n" * 257}),
    ("sms.outbound", "attributes", {f"k{i}": "v" for i in range(33)}),
    ("sms.outbound", "attributes", ["order_id"]),
    ("sms.delivery", "status", "read"),
    ("sms.delivery", "status", None),
    ("sms.delivery", "error_code", "e" * 65),
    ("sms.delivery", "error_code", 30003),
    ("sms.status", "status", "queued"),
    ("sms.status", "reason", "r" * 513),
    ("sms.status", "segments", 0),
    ("sms.status", "segments", "1"),
    ("sms.status", "encoding", "GSM7"),
    ("sms.status", "request_id", "has space"),
    ("codes.submitted", "code", "7f3kq9xz"),
    ("codes.submitted", "code", "ABC"),
    ("codes.submitted", "code", "7F3K-Q9XZ"),
    ("codes.submitted", "code", "C" * 33),
    ("points.awarded", "points", 0),
    ("points.awarded", "points", -50),
    ("points.awarded", "points", 1000001),
    ("points.awarded", "points", 1.5),
    ("points.awarded", "points", "50"),
    ("points.awarded", "reason", ""),
    ("points.awarded", "source_event_id", ""),
    ("points.awarded", "product", "p" * 65),
    ("points.commands", "command", "REDEEM"),
    ("points.commands", "command", "transfer"),
    ("points.commands", "gift", 0),
    ("points.commands", "gift", 1000),
    ("points.commands", "gift", "3"),
    ("dlq", "original_topic", ""),
    ("dlq", "original_topic", "sms inbound"),
    ("dlq", "partition", -1),
    ("dlq", "partition", "2"),
    ("dlq", "offset", -1),
    ("dlq", "offset", 1.5),
    ("dlq", "key", 42),
    ("dlq", "value_b64", "not base64!"),
    ("dlq", "value_b64", "abc"),
    ("dlq", "value_b64", None),
    ("dlq", "reason", ""),
    ("dlq", "reason", "r" * 2049),
    ("dlq", "error_type", ""),
    ("dlq", "processor", ""),
]
# Envelope fields wrong in every event.
WRONG_ENVELOPE_VALUES = [
    ("schema_version", 2),
    ("schema_version", "1"),
    ("schema_version", True),
    ("event_id", 12345),
]

# Edge values that must still pass: (event, field, value).
GOOD_VALUES = [
    ("sms.inbound", "to", "12345"),
    ("sms.inbound", "to", "+14155550100"),
    ("sms.inbound", "from", "+1234567"),
    ("sms.inbound", "from", "+123456789012345"),
    ("sms.inbound", "message_id", "8D1F4A2B-3C5E-4F60-8A7B-9C0D1E2F3A4B"),
    ("sms.inbound", "tenant_id", "a"),
    ("sms.inbound", "tenant_id", "a" * 63),
    ("sms.inbound", "tenant_id", "0-acme_tea"),
    ("sms.inbound", "text", "x"),
    ("sms.inbound", "text", "x" * 1600),
    ("sms.inbound", "text", "👋" * 1600),
    ("sms.inbound", "received_at", "2025-03-14T09:26:53Z"),
    ("sms.inbound", "received_at", "2025-03-14T09:26:53.123456-05:30"),
    ("sms.inbound", "received_at", "2016-12-31T23:59:60Z"),
    ("sms.outbound", "from", "Acme Coffee"),
    ("sms.outbound", "from", "A"),
    ("sms.outbound", "from", "12345"),
    ("sms.outbound", "from", "+14155550100"),
    ("sms.outbound", "request_id", "a.b_c:d-e"),
    ("sms.outbound", "request_id", "r" * 128),
    ("sms.outbound", "carrier_preference", []),
    ("sms.outbound", "attributes", {}),
    ("sms.outbound", "attributes", {f"k{i}": "v" * 256 for i in range(32)}),
    ("sms.outbound", "priority", 0),
    ("sms.outbound", "priority", 9),
    ("sms.delivery", "error_code", ""),
    ("sms.status", "reason", ""),
    ("codes.submitted", "code", "ABCD"),
    ("codes.submitted", "code", "9" * 32),
    ("points.awarded", "points", 1),
    ("points.awarded", "points", 1000000),
    ("points.awarded", "product", ""),
    ("points.commands", "gift", 999),
    ("dlq", "partition", 0),
    ("dlq", "offset", 0),
    ("dlq", "key", "caf\ufffd"),
    ("dlq", "key", ""),
    ("dlq", "value_b64", "QQ=="),
    ("dlq", "value_b64", "QUI="),
    ("dlq", "value_b64", "QUJD"),
]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _registry() -> Registry:
    resources = []
    for path in SCHEMA_FILES:
        contents = _load(path)
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@cache
def _schema(name: str) -> dict[str, Any]:
    return _load(SCHEMA_DIR / name / "v1.json")


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_schema(name), registry=_registry())


def _is_valid(name: str, event: Any) -> bool:
    return _validator(name).is_valid(event)


def _base(name: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(_schema(name)["examples"][index])


def _variant(name: str, field: str, value: Any, index: int = 0) -> dict[str, Any]:
    event = _base(name, index)
    if value is DELETE:
        event.pop(field, None)
    else:
        event[field] = value
    return event


def _param(name: str, field: str, value: Any, index: int = 0) -> Any:
    shown = "<missing>" if value is DELETE else repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return pytest.param(name, field, value, index, id=f"{name}-{field}={shown}")


def _bad_variants() -> Iterator[Any]:
    for name in EVENT_NAMES:
        schema = _schema(name)
        required = _schema("envelope")["required"] + schema["required"]
        for field in required:
            yield _param(name, field, DELETE)
        yield _param(name, "unexpected_field", "surprise")
        yield _param(name, "tenantId", "acme-coffee")
        wrong_type = "sms.outbound" if name == "sms.inbound" else "sms.inbound"
        for event_type in [wrong_type, "", name.upper(), None]:
            yield _param(name, "event_type", event_type)
        for tenant in BAD_TENANTS:
            yield _param(name, "tenant_id", tenant)
        for field in ["event_id", *UUID_FIELDS[name]]:
            for value in BAD_UUIDS:
                yield _param(name, field, value)
        for field in ["produced_at", *TIMESTAMP_FIELDS[name]]:
            for value in BAD_TIMESTAMPS:
                yield _param(name, field, value)
        for field in E164_FIELDS.get(name, []):
            for value in BAD_PHONES:
                yield _param(name, field, value)
        for field in ADDRESS_FIELDS.get(name, []):
            for value in BAD_ADDRESSES:
                yield _param(name, field, value)
        if name in TEXT_EVENTS:
            for value in ["x" * 1601, "👋" * 1601, "", None]:
                yield _param(name, "text", value)
        for field, value in WRONG_ENVELOPE_VALUES:
            yield _param(name, field, value)
    for name, field, value in WRONG_VALUES:
        yield _param(name, field, value)
    # examples[1] of points.commands is a redeem; without its gift it means nothing.
    yield _param("points.commands", "gift", DELETE, 1)


def _fields_without_description(schema: Any, where: str = "") -> Iterator[str]:
    if isinstance(schema, dict):
        for group in ("properties", "$defs"):
            for key, sub in schema.get(group, {}).items():
                if not (isinstance(sub, dict) and sub.get("description")):
                    yield f"{where}/{group}/{key}"
        for key, sub in schema.items():
            # "if" holds a condition on a field, not a field of its own.
            if key not in ("examples", "if"):
                yield from _fields_without_description(sub, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from _fields_without_description(sub, f"{where}/{i}")


def test_every_event_has_a_schema_file_and_there_are_no_strays() -> None:
    found = {path.parent.name for path in SCHEMA_FILES}
    assert found == {"envelope", *EVENT_NAMES, *REQUEST_NAMES}


# -- requests tenants publish (no envelope: the platform stamps it) ----------------------------

REQUEST_NAMES = ["tenant.outbound"]


@pytest.mark.parametrize("name", REQUEST_NAMES)
def test_a_request_schema_is_closed_has_descriptions_and_two_examples(name: str) -> None:
    schema = _schema(name)
    assert schema["unevaluatedProperties"] is False
    assert list(_fields_without_description(schema)) == []
    assert len(schema["examples"]) >= 2
    for example in schema["examples"]:
        assert [e.message for e in _validator(name).iter_errors(example)] == []


def _stamped(request: dict[str, Any]) -> dict[str, Any]:
    """What the bridge makes of a request (services/bridge/domain.py: Gateway.request)."""
    event = dict(request)
    event.setdefault("to", "+8613800138000")  # a reply's recipient comes from its inbound
    event.update(event_id="9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", event_type="sms.outbound",
                 produced_at="2026-06-15T10:00:00Z", schema_version=1, tenant_id="acme-coffee",
                 message_id="c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e7f", source="erp",
                 accepted_at="2026-06-15T10:00:00Z")
    return event


@pytest.mark.parametrize("index", range(3))
def test_every_tenant_outbound_example_becomes_a_valid_sms_outbound_when_stamped(index: int) -> None:
    assert _is_valid("sms.outbound", _stamped(_base("tenant.outbound", index)))


def test_a_tenant_outbound_request_takes_only_what_sms_outbound_has() -> None:
    assert set(_schema("tenant.outbound")["properties"]) <= set(_schema("sms.outbound")["properties"]) | {
        "tenant_id", "event_id", "produced_at", "schema_version"}


@pytest.mark.parametrize(("field", "value"), [
    ("request_id", DELETE), ("request_id", "has space"), ("text", DELETE), ("text", ""),
    ("text", "x" * 1601), ("to", "13800138000"), ("category", "spam"), ("priority", 10),
    ("in_reply_to", "not-a-uuid"), ("tenantId", "acme"), ("tenant_id", "Acme"),
    ("expires_at", "tomorrow"),
])
def test_a_bad_tenant_outbound_request_is_rejected(field: str, value: Any) -> None:
    assert not _is_valid("tenant.outbound", _variant("tenant.outbound", field, value))


def test_a_tenant_outbound_request_without_recipient_or_inbound_is_rejected() -> None:
    assert not _is_valid("tenant.outbound", _variant("tenant.outbound", "to", DELETE))
    assert _is_valid("tenant.outbound", _variant("tenant.outbound", "to", DELETE, 1))


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(SCHEMA_DIR)))
def test_every_schema_is_itself_a_valid_2020_12_schema(path: Path) -> None:
    schema = _load(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(SCHEMA_DIR)))
def test_every_schema_id_matches_its_file_path(path: Path) -> None:
    relative = path.relative_to(SCHEMA_DIR).as_posix()
    assert _load(path)["$id"] == f"{BASE_URI}/{relative}"


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_event_schema_includes_the_envelope_pins_its_type_and_is_closed(name: str) -> None:
    schema = _schema(name)
    assert {"$ref": f"{BASE_URI}/envelope/v1.json"} in schema["allOf"]
    assert schema["properties"]["event_type"]["const"] == name
    assert schema["unevaluatedProperties"] is False


@pytest.mark.parametrize("name", ["envelope", *EVENT_NAMES])
def test_every_field_has_a_description(name: str) -> None:
    assert list(_fields_without_description(_schema(name))) == []


@pytest.mark.parametrize("name", ["envelope", *EVENT_NAMES])
def test_every_schema_has_at_least_two_examples(name: str) -> None:
    assert len(_schema(name)["examples"]) >= 2


@pytest.mark.parametrize(
    ("name", "index"),
    [
        pytest.param(name, i, id=f"{name}-example-{i}")
        for name in ["envelope", *EVENT_NAMES]
        for i in range(len(_schema(name)["examples"]))
    ],
)
def test_every_example_validates(name: str, index: int) -> None:
    example = _schema(name)["examples"][index]
    errors = [error.message for error in _validator(name).iter_errors(example)]
    assert errors == []


@pytest.mark.parametrize("name", TEXT_EVENTS)
def test_chinese_and_emoji_text_validates(name: str) -> None:
    assert _is_valid(name, _variant(name, "text", UNICODE_TEXT))


@pytest.mark.parametrize(("name", "field", "value", "index"), list(_bad_variants()))
def test_known_bad_event_is_rejected(name: str, field: str, value: Any, index: int) -> None:
    assert _is_valid(name, _base(name, index)), "the example this variant starts from must be valid"
    assert not _is_valid(name, _variant(name, field, value, index))


@pytest.mark.parametrize(
    ("name", "field", "value", "index"), [_param(*case) for case in GOOD_VALUES]
)
def test_edge_values_that_are_allowed_validate(
    name: str, field: str, value: Any, index: int
) -> None:
    event = _variant(name, field, value, index)
    errors = [error.message for error in _validator(name).iter_errors(event)]
    assert errors == []


@pytest.mark.parametrize(
    ("command", "change", "valid"),
    [
        ("redeem", lambda e: e.pop("gift", None), False),
        ("redeem", lambda e: e.update(gift=1), True),
        ("balance", lambda e: e.pop("gift", None), True),
        ("list_gifts", lambda e: e.pop("gift", None), True),
    ],
)
def test_only_redeem_needs_a_gift(
    command: str, change: Callable[[dict[str, Any]], Any], valid: bool
) -> None:
    event = _base("points.commands", 1)
    event["command"] = command
    change(event)
    assert _is_valid("points.commands", event) is valid


@pytest.mark.parametrize(
    ("name", "tenant_required"),
    [
        ("sms.inbound", False),
        ("sms.outbound", True),
        ("sms.delivery", False),
        ("sms.status", True),
        ("codes.submitted", True),
        ("points.awarded", True),
        ("points.commands", True),
        ("dlq", False),
    ],
)
def test_tenant_id_is_required_only_where_a_tenant_is_always_known(
    name: str, tenant_required: bool
) -> None:
    assert _is_valid(name, _variant(name, "tenant_id", DELETE)) is not tenant_required
    assert _is_valid(name, _variant(name, "tenant_id", "acme-coffee"))


# -- the compiled validator in services.core.schemas must agree with the reference one -----------

@pytest.mark.parametrize(("name", "field", "value", "index"), list(_bad_variants()))
def test_the_compiled_validator_rejects_what_the_reference_rejects(name, field, value, index):
    from services.core.schemas import EventInvalid, is_valid, validate

    event = _variant(name, field, value, index)
    assert not is_valid(name, event)
    with pytest.raises(EventInvalid):
        validate(name, event)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_the_compiled_validator_accepts_every_example(name):
    from services.core.schemas import is_valid

    for example in _schema(name)["examples"]:
        assert is_valid(name, example)
