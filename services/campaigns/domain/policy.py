"""Rules a campaign message must respect: the contact's time zone, quiet hours, the frequency
cap, and the opt-out hint on marketing texts. Pure functions of their inputs and the clock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
PERIODS = ("day", "week", "month")


@lru_cache(maxsize=512)
def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The contact's zone, else the tenant's; an unknown name falls back rather than failing a send."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def parse_hhmm(value: str) -> time:
    m = HHMM.match(value or "")
    if not m:
        raise ValueError(f"{value!r} is not a time of day as HH:MM")
    return time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class QuietHours:
    """A daily window, in the contact's local time, when marketing waits. May span midnight."""

    start: time
    end: time

    @classmethod
    def of(cls, start: str | None, end: str | None) -> QuietHours | None:
        if not start or not end or start == end:
            return None
        return cls(parse_hhmm(start), parse_hhmm(end))

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """None when ``now`` is outside quiet hours, else when they end (aware, UTC)."""
        local = now.astimezone(tz)
        if not self.contains(local.time().replace(second=0, microsecond=0)):
            return None
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        # Re-attach the zone after the day arithmetic so a DST change in between is honoured.
        end = end.replace(tzinfo=None).replace(tzinfo=tz)
        return end.astimezone(UTC)


def period_key(period: str, now: datetime, tz: ZoneInfo) -> str:
    """The frequency-cap bucket ``now`` falls in, in the contact's calendar."""
    d = now.astimezone(tz).date()
    if period == "day":
        return d.isoformat()
    if period == "month":
        return f"{d.year:04d}-{d.month:02d}"
    iso = d.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def with_hint(text: str, hint: str | None, limit: int = 1600) -> str:
    """Append the tenant's opt-out hint unless the text already carries it."""
    hint = (hint or "").strip()
    if not hint or hint.lower() in text.lower():
        return text
    joined = f"{text.rstrip()} {hint}"
    if len(joined) > limit:
        raise ValueError(f"text with opt-out hint is {len(joined)} characters; at most {limit}")
    return joined


@dataclass(frozen=True)
class KindPolicy:
    category: str  # sms.outbound category
    quiet_hours: bool
    frequency_cap: bool
    optout_hint: bool


KIND_POLICIES = {
    "notification": KindPolicy("transactional", False, False, False),
    "greeting": KindPolicy("marketing", True, False, True),
    "promotion": KindPolicy("marketing", True, True, True),
    "survey": KindPolicy("marketing", True, False, False),
    "subscription": KindPolicy("transactional", False, False, False),
}
