"""Herald stores every time in UTC, and SQLite hands datetimes back without their zone: the one
place that puts the zone back and writes a time as the events' ISO form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def aware(ts: datetime) -> datetime: ...
@overload
def aware(ts: None) -> None: ...
def aware(ts: datetime | None) -> datetime | None:
    """``ts`` with its zone: a naive datetime (SQLite's) is UTC."""
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def iso(ts: datetime) -> str:
    """``2026-11-28T10:00:00.000Z``: UTC, milliseconds, as the event schemas write times."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    elif ts.tzinfo is not UTC:  # UTC already needs no conversion (one per status event)
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
