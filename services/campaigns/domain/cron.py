"""A small cron parser: ``minute hour day-of-month month day-of-week``.

Each field takes ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n`` or ``a-b/n``;
months and weekdays also take names (JAN, MON). Weekday 0 and 7 are Sunday. As in Vixie cron,
when both day-of-month and day-of-week are restricted a day matching either fires. Times are
wall-clock times in the schedule's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MONTHS = {m: i + 1 for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}
DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
SEARCH_YEARS = 5  # "30 2 29 2 *" fires at most every four years


class CronError(ValueError):
    """A schedule that cannot be parsed, with the field and the reason."""


@dataclass(frozen=True)
class Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None


FIELDS = (Field("minute", 0, 59), Field("hour", 0, 23), Field("day of month", 1, 31),
          Field("month", 1, 12, MONTHS), Field("day of week", 0, 7, DAYS))


def _value(f: Field, tok: str) -> int:
    if f.names and tok.upper() in f.names:
        return f.names[tok.upper()]
    if not tok.isdigit():
        raise CronError(f"{f.name}: {tok!r} is not a number")
    v = int(tok)
    if not f.lo <= v <= f.hi:
        raise CronError(f"{f.name}: {v} is outside {f.lo}-{f.hi}")
    return v


def _field(f: Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{f.name}: empty list item in {text!r}")
        rng, slash, step_s = part.partition("/")
        step = 1
        if slash:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"{f.name}: step {step_s!r} must be a positive number")
            step = int(step_s)
        if rng == "*":
            lo, hi = f.lo, f.hi
        elif "-" in rng:
            a, _, b = rng.partition("-")
            lo, hi = _value(f, a), _value(f, b)
            if lo > hi:
                raise CronError(f"{f.name}: range {rng!r} runs backwards")
        else:
            lo = _value(f, rng)
            hi = f.hi if slash else lo
        values.update(range(lo, hi + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    source: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.days_any and self.weekdays_any:
            return True
        if self.days_any:
            return dow
        if self.weekdays_any:
            return dom
        return dom or dow

    def next_local(self, after: datetime) -> datetime:
        """The first matching naive wall-clock minute strictly after ``after`` (naive)."""
        start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        d = start.date()
        end = d.replace(year=d.year + SEARCH_YEARS)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        while d < end:
            if self.day_matches(d):
                for h in hours:
                    if d == start.date() and h < start.hour:
                        continue
                    for m in minutes:
                        cand = datetime(d.year, d.month, d.day, h, m)
                        if cand >= start:
                            return cand
            d += timedelta(days=1)
        raise CronError(f"{self.source!r} never fires")

    def next_after(self, after: datetime, tz: str = "UTC") -> datetime:
        """The next firing (aware, UTC) after the aware instant ``after``, in time zone ``tz``."""
        zone = ZoneInfo(tz)
        local = after.astimezone(zone).replace(tzinfo=None)
        while True:
            cand = self.next_local(local)
            aware = cand.replace(tzinfo=zone)
            # A wall time skipped by a DST jump maps forward; never return a time before ``after``.
            if aware.astimezone(UTC) > after:
                return aware.astimezone(UTC)
            local = cand


def parse(source: str) -> Cron:
    fields = source.split()
    if len(fields) != 5:
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), got "
                        f"{len(fields)} in {source!r}")
    parsed = [_field(f, t) for f, t in zip(FIELDS, fields, strict=True)]
    weekdays = frozenset(d % 7 for d in parsed[4])
    cron = Cron(source=" ".join(fields), minutes=parsed[0], hours=parsed[1], days=parsed[2],
                months=parsed[3], weekdays=weekdays, days_any=fields[2].startswith("*"),
                weekdays_any=fields[4].startswith("*"))
    cron.next_local(datetime(2000, 1, 1))  # raises if it can never fire (e.g. 31 Feb)
    return cron
