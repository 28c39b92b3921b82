"""Prepaid-card and gift-card inventory files (CSV): card number, password, instructions.

Shared by the lottery (verifier) and the gift catalogue (ledger), the console and the CLI. A
file is read whole before anything is stored, and refused whole with every problem named by its
line: wrong encoding, missing columns, empty fields, a card twice in the file or already in the
inventory. Passwords stay in memory only until they are sealed (services.core.secrets)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .secrets import SecretBox

MAX_CARDS = 200_000
NUMBER_MAX = 64
PASSWORD_MAX = 200
COLUMNS = {
    "card_number": "card_number", "number": "card_number", "card": "card_number", "卡号": "card_number",
    "password": "password", "pin": "password", "密码": "password", "卡密": "password",
    "instructions": "instructions", "说明": "instructions", "使用说明": "instructions",
}


@dataclass(frozen=True)
class CardRow:
    line: int
    card_number: str
    password: str
    instructions: str

    def __repr__(self) -> str:  # never the password
        return f"CardRow(line={self.line}, card_number={self.card_number!r})"


class CardFileError(ValueError):
    """The file is refused; ``problems`` names each line (or the file) and what is wrong.
    ``items`` holds each as a %-template and its values, so a UI can translate it."""

    def __init__(self, items: list[tuple[str, dict]]) -> None:
        self.items = items
        self.problems = [text % values for text, values in items]
        super().__init__("; ".join(self.problems))


def parse_cards(raw: bytes, max_cards: int = MAX_CARDS) -> list[CardRow]:
    """Rows of a UTF-8 CSV whose header names card_number and password (instructions optional;
    the Chinese headers 卡号, 密码, 说明 too). Raises CardFileError naming every bad line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CardFileError([("The file is not UTF-8 text (byte %(byte)d). Save it as 'CSV UTF-8' "
                              "and upload it again.", {"byte": exc.start + 1})]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise CardFileError([("The file is empty: its first line must name the columns "
                              "card_number,password[,instructions].", {})])
    names = [COLUMNS.get(h.strip().lower(), "") for h in header]
    missing = [c for c in ("card_number", "password") if c not in names]
    if missing:
        raise CardFileError([("Line 1: missing column %(columns)s (the header must name card_number "
                              "and password; instructions is optional).", {"columns": ", ".join(missing)})])
    at = {n: names.index(n) for n in ("card_number", "password", "instructions") if n in names}
    rows: list[CardRow] = []
    problems: list[tuple[str, dict]] = []
    seen: dict[str, int] = {}
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        number, password, instructions = (_cell(cells, at.get(n))
                                          for n in ("card_number", "password", "instructions"))
        if not number:
            problems.append(("Line %(line)d: the card number is empty.", {"line": line}))
        elif len(number) > NUMBER_MAX:
            problems.append(("Line %(line)d: the card number is longer than %(max)d characters.",
                             {"line": line, "max": NUMBER_MAX}))
        if not password:
            problems.append(("Line %(line)d: the password is empty.", {"line": line}))
        elif len(password) > PASSWORD_MAX:
            problems.append(("Line %(line)d: the password is longer than %(max)d characters.",
                             {"line": line, "max": PASSWORD_MAX}))
        if number and number in seen:
            problems.append(("Line %(line)d: card %(card)s is already on line %(first)d.",
                             {"line": line, "card": number, "first": seen[number]}))
        elif number:
            seen[number] = line
        rows.append(CardRow(line, number, password, instructions))
        if len(rows) > max_cards:
            raise CardFileError([("The file has more than %(max)d cards; split it.", {"max": max_cards})])
    if problems:
        raise CardFileError(problems)
    if not rows:
        raise CardFileError([("The file has a header but no cards.", {})])
    return rows


def _cell(cells: list[str], i: int | None) -> str:
    return cells[i].strip() if i is not None and i < len(cells) else ""


def already_stored(rows: list[CardRow], stored: set[str]) -> None:
    """Refuse the file if any of its cards is already in the inventory it goes to."""
    problems = [("Line %(line)d: card %(card)s is already in the inventory.",
                 {"line": r.line, "card": r.card_number}) for r in rows if r.card_number in stored]
    if problems:
        raise CardFileError(problems)


def store_cards(s: Session, box: SecretBox, model: Any, owner_column: str, owner_id: int,
                tenant_id: str, rows: list[CardRow]) -> int:
    """Add parsed cards to one inventory (a prize tier's or a gift's), all or none: a card the
    inventory holds already refuses the file naming its line. Passwords are sealed at rest."""
    owner = getattr(model, owner_column)
    numbers = [r.card_number for r in rows]
    stored: set[str] = set()
    for i in range(0, len(numbers), 500):
        stored |= set(s.scalars(select(model.card_number).where(
            owner == owner_id, model.card_number.in_(numbers[i:i + 500]))))
    already_stored(rows, stored)
    s.execute(model.__table__.insert(), [
        {"tenant_id": tenant_id, owner_column: owner_id, "card_number": r.card_number,
         "password_enc": box.seal(r.password), "instructions": r.instructions} for r in rows])
    return len(rows)
