"""Unsaved rows as plain objects, for processors that write a batch with one Core insert.

Building an ORM instance costs ~30 µs (attribute instrumentation, state tracking) and the
batch writers never add these objects to a session: they read the values back and insert them
with ``insert(table)`` and a list of dicts. A ``SimpleNamespace`` holding every column of the
table (None where not given) reads the same as the model object for that purpose.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

_COLUMNS: dict[Any, dict[str, None]] = {}


def _columns(model) -> dict[str, None]:
    """The model's column keys but its generated ``id`` (a dict: ordered, quick to test)."""
    keys = _COLUMNS.get(model)
    if keys is None:
        keys = _COLUMNS[model] = dict.fromkeys(c.key for c in model.__table__.columns if c.key != "id")
    return keys


def new_row(model, **values: Any) -> SimpleNamespace:
    """An unsaved row of ``model``: every column as an attribute, None unless given."""
    keys = _columns(model)
    unknown = values.keys() - keys.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no column {sorted(unknown)}")
    return SimpleNamespace(**{**keys, **values})


def insert_values(model, rows) -> list[dict[str, Any]]:
    """The rows (``new_row`` objects) as parameter dicts for one ``insert(model.__table__)``."""
    keys = _columns(model)
    return [{k: getattr(r, k) for k in keys} for r in rows]
