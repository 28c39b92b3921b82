"""CSV for people to open in a spreadsheet: every cell a spreadsheet would evaluate is written
as text.

A cell starting with ``=``, ``+``, ``-``, ``@`` (or their full-width forms, which WPS and Excel
in Chinese locales also accept), a tab or a carriage return is a formula to Excel, LibreOffice
and WPS: a survey answer ``=HYPERLINK(...)`` would run on the tenant's desktop. Such a cell gets
a leading apostrophe (OWASP's "CSV injection" advice). A plain number such as ``+8613800138000``
or ``-5`` cannot do harm and is left as it is, so phone numbers and negative answers still read
as themselves.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")


def safe_cell(value: Any) -> Any:
    """The value, or the string with an apostrophe before it when a spreadsheet would run it."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    if PLAIN_NUMBER.match(value):
        return value
    return "'" + value


class SafeWriter:
    """``csv.writer`` whose every cell passes through :func:`safe_cell`."""

    def __init__(self, out: Any, **kwargs: Any) -> None:
        self._w = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: Any, **kwargs: Any) -> SafeWriter:
    """The writer every CSV export uses (``csv.writer`` arguments)."""
    return SafeWriter(out, **kwargs)
