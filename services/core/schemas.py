"""Loading the JSON Schemas under schemas/ and validating events against them.

Every topic's events are JSON per ``schemas/<name>/v1.json``. Producers call ``encode`` (which
validates before sending); consumers call ``decode`` (which rejects invalid JSON, bytes that are
not UTF-8, and schema violations with a reason fit for a DLQ record).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from .schema_types import quick_check

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
BASE_URI = "https://schemas.herald.dev"


class EventInvalid(ValueError):
    """An event that cannot be accepted; ``kind`` names the failure for the DLQ."""

    def __init__(self, reason: str, kind: str = "schema_violation") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@lru_cache(maxsize=4096)  # the hot processors ask once per event, of few topics
def schema_for_topic(topic: str) -> str:
    """Which schema a topic's events follow (tenant topics reuse the pipeline schemas)."""
    if topic.endswith(".dlq"):  # <topic>.dlq and tenant.<id>.dlq
        return "dlq"
    if topic.startswith("metrics."):
        return "metrics.window"
    if topic == "campaigns.inbound":
        return "sms.inbound"
    if topic.startswith("tenant.") and topic.endswith(".inbound"):
        return "sms.inbound"
    if topic.startswith("tenant.") and topic.endswith(".status"):
        return "sms.status"
    if topic.startswith("tenant.") and topic.endswith(".outbound"):
        return "sms.outbound"
    return topic


@lru_cache(maxsize=1)
def _registry() -> tuple[Registry, dict[str, Any]]:
    resources = []
    schemas: dict[str, Any] = {}
    for path in sorted(SCHEMA_DIR.glob("*/v*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
        schemas[f"{path.parent.name}/{path.stem}"] = doc
    return Registry().with_resources(resources), schemas


@cache
def validator(name: str, version: int = 1) -> Draft202012Validator:
    registry, schemas = _registry()
    try:
        doc = schemas[f"{name}/v{version}"]
    except KeyError:
        raise KeyError(f"no schema {name} v{version} under {SCHEMA_DIR}") from None
    return Draft202012Validator(doc, registry=registry)


def known_schemas() -> list[str]:
    return sorted(_registry()[1])


def _flatten(name: str, version: int = 1) -> dict[str, Any]:
    """The same rules as the schema file, in a form a code generator can compile: the envelope's
    properties merged in (``unevaluatedProperties: false`` becomes ``additionalProperties:
    false``, equivalent once nothing comes from allOf) and every ``$ref`` inlined."""
    _, schemas = _registry()
    env = schemas["envelope/v1"]
    doc = copy.deepcopy(schemas[f"{name}/v{version}"])

    def inline(node: Any, defs: dict[str, Any]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and "#/$defs/" in ref:
                base, _, def_name = ref.partition("#/$defs/")
                src = env["$defs"] if base == env["$id"] else defs
                target = inline(copy.deepcopy(src[def_name]),
                                env["$defs"] if base == env["$id"] else defs)
                rest = {k: inline(v, defs) for k, v in node.items()
                        if k not in ("$ref", "description")}
                return {"allOf": [target, rest]} if rest else target
            return {k: inline(v, defs) for k, v in node.items()
                    if k not in ("description", "examples", "title", "$id", "$defs")}
        if isinstance(node, list):
            return [inline(v, defs) for v in node]
        return node

    if name == "envelope":
        return inline(doc, env["$defs"])
    own_defs = doc.get("$defs", {})
    props = dict(env.get("properties", {}))
    for k, v in doc.get("properties", {}).items():
        props[k] = {"allOf": [props[k], v]} if k in props else v
    doc["properties"] = props
    doc["required"] = sorted(set(env.get("required", [])) | set(doc.get("required", [])))
    doc.pop("allOf", None)
    if doc.pop("unevaluatedProperties", None) is False:
        doc["additionalProperties"] = False
    doc["$schema"] = "http://json-schema.org/draft-07/schema#"
    return inline(doc, own_defs)


def _one_pattern(node: Any) -> Any:
    """``anyOf`` over string patterns (an address: E.164 or short code; a sender: those or an
    alphanumeric id) as one string with one alternation pattern. The same values pass: a
    search for ``(?:A)|(?:B)`` finds a match exactly where A or B would. The compiled check of
    an ``anyOf`` tries each branch and raises and catches an exception for each that fails,
    which was most of its cost for a short code (docs/performance.md, part 4)."""
    if isinstance(node, list):
        return [_one_pattern(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _one_pattern(v) for k, v in node.items()}
    branches = node.get("anyOf")
    if set(node) != {"anyOf"} or not isinstance(branches, list) or not branches:
        return node
    patterns: list[str] = []
    for b in branches:
        inner = b.get("anyOf") if isinstance(b, dict) and set(b) == {"anyOf"} else None
        for leaf in inner if isinstance(inner, list) else [b]:
            if not (isinstance(leaf, dict) and set(leaf) == {"type", "pattern"}
                    and leaf["type"] == "string" and isinstance(leaf["pattern"], str)):
                return node
            patterns.append(leaf["pattern"])
    return {"type": "string", "pattern": "|".join(f"(?:{p})" for p in patterns)}


@cache
def _fast(name: str, version: int = 1):
    """A compiled validator (tens of microseconds instead of hundreds) for the hot path."""
    return fastjsonschema.compile(_one_pattern(_flatten(name, version)))


@cache
def _quick(name: str, version: int = 1) -> Callable[[Any], bool] | None:
    """The msgspec check of the same rules (schema_types): True means valid, False "ask _fast"."""
    return quick_check(_one_pattern(_flatten(name, version)), name)


def is_valid(name: str, event: Any) -> bool:
    quick = _quick(name)
    if quick is not None and quick(event):
        return True
    try:
        _fast(name)(event)
        return True
    except fastjsonschema.JsonSchemaValueException:
        return False


def validate(name: str, event: Any) -> None:
    # The compiled check decides; the reference validator explains a rejection.
    if is_valid(name, event):
        return
    err = best_match(validator(name).iter_errors(event))
    if err is None:  # the two disagree: trust the stricter answer and say so
        raise EventInvalid(f"{name}: (event): rejected by the compiled schema check")
    where = "/".join(str(p) for p in err.absolute_path) or "(event)"
    msg = err.message
    if len(msg) > 300:
        msg = msg[:300] + "..."
    raise EventInvalid(f"{name}: {where}: {msg}")


def parse_json(raw: bytes | str, what: str = "value") -> Any:
    """JSON text (bytes are read as UTF-8) -> Python values, or EventInvalid naming what is wrong
    with it: the one JSON reader for events off topics and request bodies at the edge."""
    try:
        return orjson.loads(raw)  # 1.4 µs for an sms.outbound against 4.2 with json (bench_codec)
    except orjson.JSONDecodeError as exc:
        raise _not_json(raw, exc, what) from None


def parse_object(raw: bytes | str | None) -> dict[str, Any]:
    """Bytes off a topic -> a JSON object, or EventInvalid naming what is wrong with them."""
    if raw is None:
        raise EventInvalid("empty record (no value)", "invalid_json")
    event = parse_json(raw)
    if not isinstance(event, dict):
        raise EventInvalid("value is not a JSON object", "schema_violation")
    return event


def _not_json(raw: bytes | str, exc: orjson.JSONDecodeError, what: str) -> EventInvalid:
    """Why orjson refused a text, in the kinds the DLQ and the API have always used."""
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return EventInvalid(f"{what} is not UTF-8: {bad}", "wrong_encoding")
    if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1,024 levels
        return EventInvalid(f"{what} is not JSON Herald reads: nested too deeply", "invalid_json")
    return EventInvalid(f"{what} is not JSON: {exc}", "invalid_json")


def decode(name: str, raw: bytes | str | None) -> dict[str, Any]:
    """Bytes off a topic -> a validated event, or EventInvalid with the reason."""
    event = parse_object(raw)
    validate(name, event)
    return event


def encode(name: str, event: dict[str, Any]) -> bytes:
    """A validated event -> bytes for a topic. Raises EventInvalid: producers never send bad events."""
    validate(name, event)
    try:
        return orjson.dumps(event)  # compact UTF-8, as json.dumps(ensure_ascii=False) wrote; 14x cheaper
    except TypeError:  # keys that are not strings, or a str orjson refuses: the old path decides
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_NOW: tuple[int, str] = (0, "")  # the last millisecond written, and how


def now_iso() -> str:
    """Now, as the event schemas write times; written once per millisecond (a batch's events
    are produced within a few)."""
    global _NOW
    ms = time.time_ns() // 1_000_000
    last, text = _NOW
    if ms != last:
        at = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        text = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        _NOW = (ms, text)
    return text


def new_event(event_type: str, tenant_id: str | None = None, *, event_id: str | None = None,
              **fields: Any) -> dict[str, Any]:
    """An event with the shared envelope filled in; fields that are None are left out.
    ``event_id``: a stable id (one derived from what the event records), else a random one."""
    event: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "produced_at": now_iso(),
        "schema_version": 1,
    }
    if tenant_id is not None:
        event["tenant_id"] = tenant_id
    event.update({k: v for k, v in fields.items() if v is not None})
    return event
