"""Where the cluster's row of the fault table goes in docs/reliability.md (a copy of it): between
its own markers under the fault suite's table, leaving that table and the prose as they were."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

from tests.faults.table import CLUSTER_TABLE, DOC, TABLE, Row, write_table


def section(text: str, markers: tuple[str, str]) -> str:
    begin, end = markers
    return text[text.index(begin) + len(begin):text.index(end)]


def without(text: str, markers: tuple[str, str]) -> str:
    begin, end = markers
    return text[:text.index(begin)] + text[text.index(end):]


def test_the_cluster_row_goes_under_the_fault_table_and_leaves_the_rest_of_the_doc_as_it_was(tmp_path):
    doc = tmp_path / "reliability.md"
    shutil.copy(DOC, doc)
    before = doc.read_text()
    row = Row("one broker of three killed", 7000, 0, 0, 0, 4.25, 0, "node 2 | killed")

    write_table([row], datetime(2026, 12, 1, 11, 0, tzinfo=UTC), "`tests/cluster`", CLUSTER_TABLE, doc=doc)

    after = doc.read_text()
    table = section(after, CLUSTER_TABLE)
    assert "Last run: 2026-12-01 11:00 UTC (`tests/cluster`, 1 scenario)." in table
    assert "| one broker of three killed | 7000 | 0 | 0 | 0 | 4.2 | 0 | node 2 / killed |" in table
    assert after.index(TABLE[1]) < after.index(CLUSTER_TABLE[0])
    assert section(after, TABLE) == section(before, TABLE)
    assert without(after, CLUSTER_TABLE) == without(before, CLUSTER_TABLE)


def test_a_doc_without_the_cluster_markers_gets_them_at_the_end_of_the_faults_section(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n\n<!-- faults:begin -->\n<!-- faults:table:begin -->\nold\n"
                   "<!-- faults:table:end -->\n<!-- faults:end -->\n")

    write_table([Row("x", 1, 0, 0, 0, None, 0)], datetime.now(UTC), "`tests/cluster`", CLUSTER_TABLE, doc=doc)

    text = doc.read_text()
    assert "old" in section(text, TABLE)
    assert "| x | 1 | 0 | 0 | 0 | – | 0 |  |" in section(text, CLUSTER_TABLE)
    assert text.index(CLUSTER_TABLE[1]) < text.index("<!-- faults:end -->")
