"""The event schemas as msgspec types: the first, cheap check of an event on the hot path.

``quick_check(doc)`` turns a flattened schema (``schemas._flatten``: one object, ``$ref``s
inlined) into a function that answers True when an event certainly satisfies it, and False when
it cannot say so: the compiled JSON Schema check then decides, as before. So the answer can only
be sped up, never changed: what msgspec accepts, the schema accepts (a property test holds the
two together, tests/unit/test_schema_types.py), and whatever msgspec cannot express is left to
the compiled check:

- a property whose rules have no msgspec form (``uniqueItems``, nested objects with their own
  properties, a ``format`` the compiled check treats specially) is "slow": an event that carries
  it goes to the compiled check;
- what msgspec refuses (a float 1.0 where an integer is due, a bad value) goes there too, which
  accepts it or names the fault.

The compiled check fills in ``default`` values; an event accepted here gets the same top-level
defaults. A check costs 2-3 µs against 7-17 for the compiled one (bench/bench_codec.py).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from fastjsonschema.draft04 import DOLLAR_FINDER
from fastjsonschema.draft07 import CodeGeneratorDraft07

# What the compiled check tests a ``format`` with (draft 7): the same expressions here.
_FORMAT_REGEXS: dict[str, str] = CodeGeneratorDraft07.FORMAT_REGEXS


class Unsupported(Exception):
    """A rule with no msgspec form that gives exactly the compiled check's answer or a stricter one."""


def _merge(node: dict[str, Any]) -> dict[str, Any]:
    """``allOf`` of plain rule sets as one rule set (the envelope's rules and an event's own)."""
    parts = node.get("allOf")
    if parts is None:
        return node
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            raise Unsupported("allOf of a non-object")
        for k, v in _merge(part).items():
            if k in merged and merged[k] != v:
                raise Unsupported(f"allOf with two values for {k}")
            merged[k] = v
    return merged


def _pattern(node: dict[str, Any]) -> str | None:
    """One regular expression for ``pattern`` and ``format`` together, as ``re.search`` (msgspec's
    way) reads it; the dollar rewritten to the end of the text, as the compiled check does."""
    pattern = node.get("pattern")
    fmt = node.get("format")
    fmt_re = _FORMAT_REGEXS.get(fmt) if fmt is not None else None
    if fmt == "regex":
        raise Unsupported("format regex")
    if pattern is not None:
        pattern = DOLLAR_FINDER.sub(r"\\Z", pattern)
    if fmt_re is None:
        return pattern
    if not fmt_re.startswith("^"):
        raise Unsupported(f"format {fmt}: not anchored")
    if pattern is None:
        return fmt_re
    if not pattern.startswith("^"):
        raise Unsupported("a pattern not anchored at the start, with a format")
    # Both anchored at the start: a search for the pair finds a match exactly where the
    # pattern's search and the format's match both would.
    return f"(?={pattern})(?:{fmt_re})"


_STRING_KEYS = {"type", "pattern", "format", "minLength", "maxLength", "default"}
_INTEGER_KEYS = {"type", "minimum", "maximum", "default"}


def _type(node: Any) -> Any:
    """The msgspec type for one property's rules, or Unsupported."""
    if not isinstance(node, dict):
        raise Unsupported("a boolean schema")
    node = _merge(node)
    if "const" in node or "enum" in node:
        values = [node["const"]] if "const" in node else list(node["enum"])
        if not values or not all(type(v) in (str, int) for v in values):
            raise Unsupported("const/enum of other than strings and integers")
        rest = {k: v for k, v in node.items() if k not in ("const", "enum")}
        if rest:  # the values themselves must satisfy the other rules, or nothing could pass
            base = _type(rest)
            for v in values:
                try:
                    msgspec.convert(v, base)
                except msgspec.ValidationError:
                    raise Unsupported("a const/enum value its own rules refuse") from None
        return Literal[tuple(values)]  # type: ignore[valid-type]
    kind = node.get("type")
    if kind == "string":
        if set(node) - _STRING_KEYS:
            raise Unsupported(f"string rules {sorted(set(node) - _STRING_KEYS)}")
        meta: dict[str, Any] = {}
        if (pattern := _pattern(node)) is not None:
            re.compile(pattern)
            meta["pattern"] = pattern
        if "minLength" in node:
            meta["min_length"] = node["minLength"]
        if "maxLength" in node:
            meta["max_length"] = node["maxLength"]
        return Annotated[str, msgspec.Meta(**meta)] if meta else str
    if kind == "integer":
        if set(node) - _INTEGER_KEYS:
            raise Unsupported(f"integer rules {sorted(set(node) - _INTEGER_KEYS)}")
        meta = {}
        if "minimum" in node:
            meta["ge"] = node["minimum"]
        if "maximum" in node:
            meta["le"] = node["maximum"]
        return Annotated[int, msgspec.Meta(**meta)] if meta else int
    if kind == "boolean" and set(node) <= {"type", "default"}:
        return bool
    if kind == "array" and set(node) <= {"type", "items", "minItems", "maxItems", "default"}:
        meta = {}
        if "minItems" in node:
            meta["min_length"] = node["minItems"]
        if "maxItems" in node:
            meta["max_length"] = node["maxItems"]
        items = list[_type(node["items"])] if "items" in node else list  # type: ignore[misc]
        return Annotated[items, msgspec.Meta(**meta)] if meta else items
    if kind == "object" and "properties" not in node \
            and set(node) <= {"type", "additionalProperties", "minProperties", "maxProperties"}:
        extra = node.get("additionalProperties", True)
        if extra is False:
            raise Unsupported("an object that may hold nothing")
        values_type = Any if extra is True else _type(extra)
        meta = {}
        if "minProperties" in node:
            meta["min_length"] = node["minProperties"]
        if "maxProperties" in node:
            meta["max_length"] = node["maxProperties"]
        mapping = dict[str, values_type]  # type: ignore[valid-type]
        return Annotated[mapping, msgspec.Meta(**meta)] if meta else mapping
    raise Unsupported(f"type {kind!r} with {sorted(node)}")


def quick_check(doc: dict[str, Any], name: str = "event") -> Callable[[Any], bool] | None:
    """The quick check for a flattened schema (see the module's docstring), or None when the
    schema's top level has no msgspec form."""
    if doc.get("type") != "object" or set(doc) - {"$schema", "type", "properties", "required",
                                                   "additionalProperties"}:
        return None
    extra = doc.get("additionalProperties", True)
    if extra not in (True, False):
        return None
    props: dict[str, Any] = doc.get("properties", {})
    required = set(doc.get("required", []))
    if required - set(props):
        return None
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    slow: set[str] = set()
    defaults: dict[str, Any] = {}
    for i, (key, rules) in enumerate(props.items()):
        try:
            kind = _type(rules)
            if isinstance(rules, dict) and "default" in _merge(rules):
                defaults[key] = _merge(rules)["default"]
        except Unsupported:
            if key in required:
                return None  # every event carries it: the quick check would never answer
            slow.add(key)
            kind = Any  # never read: an event with this key goes to the compiled check
        attr = f"f{i}"
        rename[attr] = key
        fields.append((attr, kind) if key in required else (attr, kind, None))
    struct = msgspec.defstruct(f"Quick_{re.sub(r'[^A-Za-z0-9]', '_', name)}", fields,
                               kw_only=True, forbid_unknown_fields=extra is False, rename=rename)
    convert, invalid = msgspec.convert, msgspec.ValidationError
    fixed = {k: v for k, v in defaults.items() if isinstance(v, (str, int, float, bool, type(None)))}
    shared = {k: v for k, v in defaults.items() if k not in fixed}

    def check(event: Any) -> bool:
        if type(event) is not dict or (slow and not slow.isdisjoint(event)):
            return False
        try:
            convert(event, struct)
        except invalid:
            return False
        for k, v in fixed.items():
            if k not in event:
                event[k] = v
        for k, v in shared.items():
            if k not in event:
                event[k] = copy.deepcopy(v)
        return True

    return check
