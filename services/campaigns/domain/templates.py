"""Message templates: ``Hello {name}, your bill of {amount} is due on {due_date}.``

``{field}`` is replaced by the contact's value, ``{field|fallback}`` uses the fallback when the
contact has none, ``{{`` and ``}}`` are literal braces. Fields are checked when a campaign is
created (an unknown field is an error then, not a blank in 100,000 messages later). Only plain
names are allowed: no attribute access or format specs as ``str.format`` would allow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FIELD_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
TEXT_MAX = 1600

# Contact attributes every tenant has; custom fields come from the tenant's registry.
BUILTIN_FIELDS = frozenset({"name", "first_name", "msisdn", "phone", "language", "timezone"})


class TemplateError(ValueError):
    """A template that cannot be used, with the reason."""


@dataclass(frozen=True)
class Placeholder:
    name: str
    fallback: str | None


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[str | Placeholder, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, Placeholder))

    def render(self, values: Mapping[str, object]) -> str:
        """The text for one contact; raises MissingField when a field without fallback is empty."""
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            v = values.get(p.name)
            if v is None or v == "":
                if p.fallback is None:
                    raise MissingField(p.name)
                v = p.fallback
            out.append(str(v))
        return "".join(out)


class MissingField(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def parse(source: str) -> Template:
    if not source or not source.strip():
        raise TemplateError("template is empty")
    if len(source) > TEXT_MAX:
        raise TemplateError(f"template is {len(source)} characters; at most {TEXT_MAX}")
    parts: list[str | Placeholder] = []
    pos = 0
    for m in FIELD_RE.finditer(source):
        if m.start() > pos:
            parts.append(source[pos:m.start()])
        tok = m.group(0)
        if tok in ("{{", "}}"):
            parts.append(tok[0])
        elif tok in ("{", "}"):
            raise TemplateError(f"unmatched '{tok}' at character {m.start() + 1}; write '{tok}{tok}' "
                                f"for a literal brace")
        else:
            inner = m.group(1)
            name, sep, fallback = inner.partition("|")
            name = name.strip().lower()
            if not NAME_RE.match(name):
                raise TemplateError(f"'{{{inner}}}' is not a field name (letters, digits, '_')")
            parts.append(Placeholder(name, fallback if sep else None))
        pos = m.end()
    if pos < len(source):
        parts.append(source[pos:])
    return Template(source, tuple(parts))


def check_fields(template: Template, known: Iterable[str]) -> None:
    """Raise TemplateError naming every field the tenant's contacts do not have."""
    allowed = BUILTIN_FIELDS | set(known)
    unknown = sorted(template.fields - allowed)
    if unknown:
        listed = ", ".join(f"{{{u}}}" for u in unknown)
        raise TemplateError(f"unknown field(s) {listed}; known fields: "
                            f"{', '.join(sorted(allowed))}")


def contact_values(contact) -> dict[str, object]:
    """What a template sees of a contact: its custom fields, then the built-in attributes."""
    values: dict[str, object] = dict(contact.fields or {})
    name = contact.name or ""
    values.update(name=name, first_name=name.split(" ")[0] if name else "",
                  msisdn=contact.msisdn, phone=contact.msisdn, language=contact.language or "",
                  timezone=contact.timezone or "")
    return values
