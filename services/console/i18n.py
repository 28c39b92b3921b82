"""Translations (Babel catalogues under services/console/i18n/) and the tenant's time zone.

The `.po` catalogues are the source; they are compiled in memory at start-up, so no build step
is needed to run. `make i18n` re-extracts strings from the templates and Python code and
updates the catalogues (pybabel)."""

from __future__ import annotations

import io
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

CATALOGUES = Path(__file__).resolve().parent / "i18n"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
LANGUAGES = {"en": "English", "zh_Hans": "简体中文"}

_locale: ContextVar[str] = ContextVar("console_locale", default=DEFAULT_LOCALE)
_zone: ContextVar[str] = ContextVar("console_zone", default="UTC")


@cache
def translations(locale: str) -> NullTranslations:
    """Every catalogue of the language merged: one `.po` file per area of the console
    (messages.po for the shell, contacts.po, campaigns.po, ...), so areas grow apart."""
    merged: NullTranslations | None = None
    for po in sorted((CATALOGUES / locale / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=locale)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        t = Translations(fp=buf, domain=DOMAIN)
        if merged is None:
            merged = t
        else:
            merged.merge(t)
    return merged or NullTranslations()


def use(locale: str, zone: str) -> None:
    """Set the language and time zone for the current request (a context variable)."""
    _locale.set(locale if locale in LANGUAGES else DEFAULT_LOCALE)
    _zone.set(zone or "UTC")


def current_locale() -> str:
    return _locale.get()


def gettext(message: str, **values: object) -> str:
    text = translations(_locale.get()).ugettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, n: int, **values: object) -> str:
    text = translations(_locale.get()).ungettext(singular, plural, n)
    return text % {"num": n, **values}


_ = gettext


def _babel_locale() -> Locale:
    return Locale.parse(_locale.get())


def zone() -> ZoneInfo:
    try:
        return ZoneInfo(_zone.get())
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(zone())


def format_datetime(ts: datetime | None, fmt: str = "medium") -> str:
    """A date and time in the tenant's time zone and the user's language."""
    if ts is None:
        return "—"
    return _format_datetime(local(ts), format=fmt, locale=_babel_locale())


def format_date(ts: datetime | None, fmt: str = "medium") -> str:
    if ts is None:
        return "—"
    return _format_date(local(ts), format=fmt, locale=_babel_locale())


def format_number(n: float | int | None) -> str:
    return "—" if n is None else format_decimal(n, locale=_babel_locale())


def format_pct(x: float | None) -> str:
    return "—" if x is None else format_percent(x, format="#,##0.0%", locale=_babel_locale())
