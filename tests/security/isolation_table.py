"""The doors x attempts table of tenant isolation, written into docs/reliability.md between
``<!-- isolation:begin -->`` and ``<!-- isolation:end -->`` by the modules that make the attempts
(tests/security/test_tenant_isolation.py: every door but Kafka's; test_kafka_tls.py: Kafka's).
Each attempt is run, its outcome
observed and recorded, then asserted; a row whose result starts with LEAK is a failed test. Rows
that point at an existing test record where that attempt is asserted (not re-run here)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.infra import ROOT

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- isolation:begin -->", "<!-- isolation:end -->"
DOORS = ["send API (ingress /v1)", "carrier webhooks", "admin API (console /v1)", "console pages",
         "tenant webhooks", "tenant Kafka topics"]
HEADER = ("| door | attempt (tenant B's credentials, tenant A's data) | expected | result | where |\n"
          "|---|---|---|---|---|")
INTRO = ("Tenant isolation, door by door: each attempt uses tenant B's credentials against tenant A's "
         "data. Rows with a result were run by the last `tests/security` run (a leak fails the "
         "test and shows here as LEAK); rows that name another test are asserted there on every "
         "run.")


@dataclass
class Row:
    door: str
    attempt: str
    expected: str
    result: str
    where: str

    def line(self) -> str:
        cells = [c.replace("|", "\\|").replace("\n", " ") for c in
                 (self.door, self.attempt, self.expected, self.result, self.where)]
        return "| " + " | ".join(cells) + " |"


@dataclass
class Table:
    where: str  # the module that runs the attempts
    rows: list[Row] = field(default_factory=list)

    def attempt(self, door: str, attempt: str, expected: str, observe: Callable[[], str]) -> str:
        """Run ``observe`` (it asserts the refusal and returns what it saw); record the row."""
        assert door in DOORS, door
        try:
            seen = observe()
        except AssertionError as exc:
            self.rows.append(Row(door, attempt, expected, f"LEAK: {str(exc)[:120]}", self.where))
            raise
        self.rows.append(Row(door, attempt, expected, seen, self.where))
        return seen

    def covered(self, door: str, attempt: str, expected: str, test: str) -> None:
        """An attempt an existing test makes and asserts (named, not repeated here)."""
        assert door in DOORS, door
        path, _, name = test.partition("::")
        assert (ROOT / path).exists(), f"{test}: no such test file"
        assert not name or f"def {name}(" in (ROOT / path).read_text(), f"{test}: no such test"
        self.rows.append(Row(door, attempt, expected, "asserted there", f"`{test}`"))

    def write(self) -> None:
        """Merge these rows into the doc's isolation section (same door and attempt: replaced)."""
        text = DOC.read_text() if DOC.exists() else (
            "# Reliability\n\n<!-- faults:begin -->\n<!-- faults:end -->\n\n" + BEGIN + "\n" + END + "\n")
        if BEGIN not in text:
            text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + END + "\n"
        head, rest = text.split(BEGIN, 1)
        section, tail = rest.split(END, 1)
        old = [_parse(ln) for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| door")]
        # A module owns the doors it writes (the modules' doors do not overlap): its rows of the
        # last run replace all of those doors' rows, so a renamed attempt leaves no stale row.
        mine = {r.door for r in self.rows}
        merged = {(r.door, r.attempt): r for r in old if r is not None and r.door not in mine}
        for r in self.rows:
            merged[(r.door, r.attempt)] = r
        rows = sorted(merged.values(), key=lambda r: DOORS.index(r.door) if r.door in DOORS else len(DOORS))
        body = "\n".join([INTRO, "", HEADER, *[r.line() for r in rows]])
        DOC.write_text(head + BEGIN + "\n" + body + "\n" + END + tail)


def _parse(line: str) -> Row | None:
    cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    return Row(*cells) if len(cells) == 5 else None
