"""CSV exports people open in spreadsheets: a cell a spreadsheet would evaluate is written as
text, in every export (survey results, code batches), while phone numbers and plain numbers stay
as they are."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from services.campaigns.domain import campaigns, conversations, surveys
from services.core.csv_export import safe_cell
from services.core.tenancy import add_number, create_tenant
from services.verifier.domain import codes

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", [
    "=HYPERLINK(\"http://evil\",\"click\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
    "\t=1+1", "\r=1+1", "\uff1d1+1",
])
def test_a_cell_a_spreadsheet_would_evaluate_is_written_as_text(raw):
    assert safe_cell(raw) == "'" + raw


@pytest.mark.parametrize("raw", ["+8613800138000", "-5", "3.5", "Great", "", "a=b", 42, None])
def test_numbers_phone_numbers_and_ordinary_text_are_left_as_they_are(raw):
    assert safe_cell(raw) == raw


def _inbound(text: str, mid: int) -> dict:
    m = f"00000000-0000-4000-8000-{mid:012d}"
    return {"event_id": m, "event_type": "sms.inbound", "tenant_id": "acme", "message_id": m,
            "carrier": "sim", "carrier_message_id": m, "from": "+8613800000001", "to": "10690001",
            "text": text, "received_at": "2026-06-15T10:00:00Z"}


def test_a_survey_answer_beginning_with_equals_is_exported_as_text(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme", default_sender="10690001")
        add_number(s, "acme", "10690001")
        cid = campaigns.create(s, "acme", {"name": "v", "kind": "survey", "config": {
            "keyword": "VISIT", "questions": [
                {"key": "q1", "text": "How many?", "type": "number", "min": -10, "max": 10},
                {"key": "q2", "text": "Anything else?", "type": "text"}]}}, now=NOW).id
    for i, text in enumerate(["VISIT", "-5", '=HYPERLINK("http://evil","x")'], 1):
        with sqlite_db.session() as s:
            conversations.handle(s, _inbound(text, i), NOW)
    with sqlite_db.session() as s:
        rows = list(csv.reader(io.StringIO("".join(surveys.export_csv(s, cid)))))
    assert rows[1][0] == "+8613800000001"
    assert rows[1][4:] == ["-5", '\'=HYPERLINK("http://evil","x")']


def test_a_code_batch_export_neutralises_a_product_slug_a_spreadsheet_would_run():
    out = io.StringIO()
    codes.write_csv(out, ["ABCD2345"], "=cmd", 7)
    assert out.getvalue().splitlines()[1].split(",")[2] == "'=cmd"
