"""Greetings: on a contact's date (a birthday field, or a fixed holiday), in the contact's own
time zone, once a year. The year is the occurrence of the recipient record and part of the
request id, so a second pass the same day, or a crashed and repeated pass, greets nobody twice."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from .policy import parse_hhmm


class GreetingError(ValueError):
    pass


@dataclass(frozen=True)
class GreetingRule:
    date_field: str | None  # e.g. "birthday": each contact's own date
    fixed: tuple[int, int] | None  # (month, day) for a holiday, the same for everyone
    send_at: time  # local time of day from which the greeting may go

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GreetingRule:
        field = config.get("date_field")
        fixed = config.get("date")
        if bool(field) == bool(fixed):
            raise GreetingError("a greeting needs either 'date_field' (e.g. \"birthday\") or a "
                                "fixed 'date' as MM-DD (e.g. \"01-01\")")
        md = None
        if fixed:
            md = month_day(str(fixed))
            if md is None:
                raise GreetingError(f"date {fixed!r} is not MM-DD")
        try:
            send_at = parse_hhmm(config.get("send_at", "09:00"))
        except ValueError as exc:
            raise GreetingError(f"send_at: {exc}") from None
        return cls(str(field).lower() if field else None, md, send_at)

    def occasion(self, fields: dict[str, Any]) -> tuple[int, int] | None:
        if self.fixed:
            return self.fixed
        return month_day(str(fields.get(self.date_field) or ""))

    def due(self, fields: dict[str, Any], now: datetime, tz: ZoneInfo) -> int | None:
        """The year to greet for when the contact's day has come (and send_at has passed)
        locally; None otherwise."""
        md = self.occasion(fields)
        if md is None:
            return None
        local = now.astimezone(tz)
        if not is_day(md, local.date()) or local.time() < self.send_at:
            return None
        return local.year


def month_day(value: str) -> tuple[int, int] | None:
    v = value.strip()
    if len(v) == 10:  # YYYY-MM-DD
        v = v[5:]
    if len(v) != 5 or v[2] != "-":
        return None
    try:
        date(2000, int(v[:2]), int(v[3:]))
    except ValueError:
        return None
    return int(v[:2]), int(v[3:])


def is_day(md: tuple[int, int], today: date) -> bool:
    """29 February is celebrated on 28 February in common years."""
    m, d = md
    if (m, d) == (2, 29) and not calendar.isleap(today.year):
        return (today.month, today.day) == (2, 28)
    return (today.month, today.day) == (m, d)
