"""How every scenario ends: its row goes into the table, then the promise is asserted."""

from __future__ import annotations

from tests.faults.harness import Row


def record(table: list[Row], row: Row, *, duplicates_allowed: int = 0) -> None:
    table.append(row)
    print(row)
    assert row.lost == 0, row
    assert row.double_effects == 0, row
    assert row.duplicated <= duplicates_allowed, row
    assert row.recovery_s is not None, row
