"""services.core.rows: unsaved rows as plain objects for batch Core inserts."""

from __future__ import annotations

import pytest

from services.core.db.schemes import LedgerEntry
from services.core.rows import insert_values, new_row


def test_a_new_row_has_every_column_none_unless_given():
    row = new_row(LedgerEntry, member="+8613800000001", points=10)
    assert row.member == "+8613800000001" and row.points == 10
    assert row.reason is None and row.balance_after is None


def test_a_new_row_refuses_a_column_the_table_does_not_have():
    with pytest.raises(TypeError, match="no column"):
        new_row(LedgerEntry, member="+8613800000001", pionts=10)


def test_insert_values_give_every_column_but_the_generated_id():
    [values] = insert_values(LedgerEntry, [new_row(LedgerEntry, points=5)])
    assert "id" not in values and values["points"] == 5
    assert set(values) == {c.key for c in LedgerEntry.__table__.columns} - {"id"}
