"""A tenant's campaign policy (rate, time zone, quiet hours, frequency cap), with defaults for a
tenant that never set one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from services.core.db.campaigns_models import CampaignSettings
from services.core.db.models import Tenant

from .policy import PERIODS, QuietHours, parse_hhmm, valid_zone


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Policy:
    tenant_id: str
    rate_per_second: float
    timezone: str
    quiet: QuietHours | None
    frequency_cap: int
    frequency_period: str
    optout_hint: str
    default_sender: str | None
    unknown_reply: str | None


def policy_for(s: Session, tenant_id: str, default_rate: float) -> Policy:
    row = s.get(CampaignSettings, tenant_id)
    tenant = s.get(Tenant, tenant_id)
    hint = tenant.optout_hint if tenant is not None else "Reply STOP to opt out"
    sender = tenant.default_sender if tenant is not None else None
    if row is None:
        return Policy(tenant_id, default_rate, "UTC", None, 0, "week", hint, sender, None)
    return Policy(tenant_id, row.rate_per_second, row.timezone or "UTC",
                  QuietHours.of(row.quiet_start, row.quiet_end), row.frequency_cap or 0,
                  row.frequency_period or "week", hint, sender, row.unknown_reply)


def update(s: Session, tenant_id: str, body: dict[str, Any]) -> CampaignSettings:
    row = s.get(CampaignSettings, tenant_id)
    if row is None:
        row = CampaignSettings(tenant_id=tenant_id, rate_per_second=50.0, timezone="UTC",
                               frequency_cap=0, frequency_period="week")
        s.add(row)
    unknown = set(body) - {"rate_per_second", "timezone", "quiet_hours", "frequency_cap",
                           "frequency_period", "unknown_reply"}
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "rate_per_second" in body:
        r = body["rate_per_second"]
        if not isinstance(r, int | float) or isinstance(r, bool) or not 0 < r <= 10000:
            raise SettingsError("rate_per_second must be a number above 0 and at most 10000")
        row.rate_per_second = float(r)
    if "timezone" in body:
        if not isinstance(body["timezone"], str) or not valid_zone(body["timezone"]):
            raise SettingsError(f"timezone {body['timezone']!r} is not an IANA time zone")
        row.timezone = body["timezone"]
    if "quiet_hours" in body:
        q = body["quiet_hours"]
        if q is None:
            row.quiet_start = row.quiet_end = None
        else:
            if not isinstance(q, dict) or set(q) != {"start", "end"}:
                raise SettingsError('quiet_hours must be {"start": "HH:MM", "end": "HH:MM"} or null')
            try:
                parse_hhmm(q["start"])
                parse_hhmm(q["end"])
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"quiet_hours: {exc}") from None
            row.quiet_start, row.quiet_end = q["start"], q["end"]
    if "frequency_cap" in body:
        c = body["frequency_cap"]
        if not isinstance(c, int) or isinstance(c, bool) or c < 0:
            raise SettingsError("frequency_cap must be a whole number, 0 for no cap")
        row.frequency_cap = c
    if "frequency_period" in body:
        if body["frequency_period"] not in PERIODS:
            raise SettingsError(f"frequency_period must be one of {', '.join(PERIODS)}")
        row.frequency_period = body["frequency_period"]
    if "unknown_reply" in body:
        v = body["unknown_reply"]
        if v is not None and (not isinstance(v, str) or not 0 < len(v) <= 480):
            raise SettingsError("unknown_reply must be 1 to 480 characters, or null")
        row.unknown_reply = v
    s.flush()
    return row


def settings_json(row: CampaignSettings | None, tenant_id: str, default_rate: float) -> dict[str, Any]:
    if row is None:
        return {"tenant_id": tenant_id, "rate_per_second": default_rate, "timezone": "UTC",
                "quiet_hours": None, "frequency_cap": 0, "frequency_period": "week",
                "unknown_reply": None}
    return {"tenant_id": tenant_id, "rate_per_second": row.rate_per_second,
            "timezone": row.timezone,
            "quiet_hours": {"start": row.quiet_start, "end": row.quiet_end}
            if row.quiet_start and row.quiet_end else None,
            "frequency_cap": row.frequency_cap, "frequency_period": row.frequency_period,
            "unknown_reply": row.unknown_reply}
