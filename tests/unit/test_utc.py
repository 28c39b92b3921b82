"""services/core/utc.py: SQLite's naive datetimes are UTC, and times are written as the events
write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from services.core.utc import aware, iso


def test_a_naive_datetime_is_read_as_utc_and_an_aware_one_is_left_alone():
    naive = datetime(2026, 12, 1, 6, 30)
    assert aware(naive) == datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
    beijing = datetime(2026, 12, 1, 14, 30, tzinfo=timezone(timedelta(hours=8)))
    assert aware(beijing) is beijing
    assert aware(None) is None


def test_a_time_is_written_in_utc_with_milliseconds_and_a_z():
    beijing = datetime(2026, 12, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=8)))
    assert iso(beijing) == "2026-12-01T06:30:05.123Z"
    assert iso(datetime(2026, 12, 1, 6, 30)) == "2026-12-01T06:30:00.000Z"
