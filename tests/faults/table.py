"""The fault tables of docs/reliability.md: one ``Row`` per scenario, rendered as markdown and
written between a pair of markers of the faults section, whose prose is written by hand.

Two suites write here: the fault suite (tests/faults, one broker) its table, and the cluster
suite (tests/cluster, three brokers) the row of one broker of three killed, in a table of its
own under the first, with the same columns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"
# each table's own markers inside the section
TABLE = ("<!-- faults:table:begin -->", "<!-- faults:table:end -->")
CLUSTER_TABLE = ("<!-- faults:cluster:begin -->", "<!-- faults:cluster:end -->")

HEADER = """# Reliability

What Herald promises: nothing accepted is lost and nothing takes effect twice. This page shows
the evidence, written by the test suites that produce it.

"""
COLUMNS = ["scenario", "accepted", "lost", "duplicated submits", "double effects", "recovery s",
           "DLQ records", "note"]


@dataclass
class Row:
    scenario: str
    accepted: int
    lost: int
    duplicated: int
    double_effects: int
    recovery_s: float | None
    dlq: int
    note: str = ""
    refused: dict = field(default_factory=dict)  # why calls were not accepted, and how many

    def cells(self) -> list[str]:
        rec = "–" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return [self.scenario, str(self.accepted), str(self.lost), str(self.duplicated),
                str(self.double_effects), rec, str(self.dlq), self.note]


def render(rows: list[Row], when: datetime, source: str = "`make test-faults`") -> str:
    """``source``: what ran the rows, named in the line above the table."""
    count = f"{len(rows)} scenario" + ("" if len(rows) == 1 else "s")
    lines = [f"Last run: {when:%Y-%m-%d %H:%M} UTC ({source}, {count}).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def write_table(rows: list[Row], when: datetime, source: str = "`make test-faults`",
                markers: tuple[str, str] = TABLE, doc: Path = DOC) -> None:
    """Put the rendered rows between ``markers``, adding the section and the markers (at the
    section's end) if the doc lacks them; everything outside the markers is left as it is."""
    begin, end = markers
    text = doc.read_text() if doc.exists() else (
        HEADER + f"{BEGIN}\n{END}\n\n<!-- isolation:begin -->\n<!-- isolation:end -->\n")
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    if begin not in text:
        text = text.replace(END, f"{begin}\n{end}\n{END}")
    table = render(rows, when, source)
    text = re.sub(re.escape(begin) + r".*?" + re.escape(end),
                  lambda _m: f"{begin}\n{table}\n{end}", text, flags=re.S)
    doc.write_text(text)
