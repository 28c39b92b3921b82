"""How every scenario ends: its row goes into the table, then the promise is asserted."""

from __future__ import annotations

from tests.faults.table import Row


def record(table: list[Row], row: Row, *, duplicates_allowed: int = 0) -> None:
    table.append(row)
    print(row)
    assert row.lost == 0, row
    assert row.double_effects == 0, row
    assert row.duplicated <= duplicates_allowed, row
    assert row.recovery_s is not None, row
    # a call refused during a fault is told to retry (503) or could not connect: never a 500
    assert not [k for k in row.refused if "HTTP 500" in k], row.refused
