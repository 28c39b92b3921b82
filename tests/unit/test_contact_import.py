"""Contact CSV imports: an import stores exactly the rows its report accepted, or nothing;
duplicates are reported, not merged; files saved by Chinese spreadsheet programs (GB18030/GBK,
or UTF-8 with Chinese headers) import, and a file that cannot be read says what to do."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.campaigns.domain import campaigns, contacts, inquiry
from services.campaigns.domain.campaigns import CampaignError
from services.core.db.campaigns_models import ContactList, InquiryRow
from services.core.db.models import Contact
from services.core.tenancy import create_tenant


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme", default_sender="10690001")
    return sqlite_db


def stored(db) -> dict[str, str | None]:
    with db.session() as s:
        return dict(s.execute(select(Contact.msisdn, Contact.name)).all())


def rows(n: int) -> list[bytes]:
    return [f"+86138{i:08d},Person {i}".encode() for i in range(1, n + 1)]


def test_a_file_with_bad_bytes_on_row_1101_is_refused_whole_and_says_what_to_do(db):
    body = rows(1200)
    body[1100] = b"+8613800001101,\xff\xfe broken"
    data = b"msisdn,name\n" + b"\n".join(body) + b"\n"
    with pytest.raises(contacts.CsvError) as exc:
        contacts.import_upload(db.session, "acme", io.BytesIO(data), list_name="all")
    assert "line 1102" in str(exc.value) and "CSV UTF-8" in str(exc.value)
    assert "encoding=" in str(exc.value) and "nothing was imported" in str(exc.value)
    assert stored(db) == {}


def test_an_import_failing_part_way_through_its_stream_leaves_nothing_stored(db):
    # The stream decodes lazily, as an upload does: the error comes after 1,000 rows were upserted.
    body = rows(1200)
    body[1100] = b"+8613800001101,\xff broken"
    stream = io.TextIOWrapper(io.BytesIO(b"msisdn,name\n" + b"\n".join(body)), encoding="utf-8",
                              newline="")
    with pytest.raises(contacts.CsvError, match="nothing was imported"):
        contacts.import_csv(db.session, "acme", stream, list_name="all")
    assert stored(db) == {}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ContactList)) == 0


def test_a_repeated_number_is_reported_as_a_duplicate_and_the_first_row_kept(db):
    data = (b"msisdn,name\n+8613800000001,Li\n+8613800000002,Wang\n"
            b"+86 138 0000 0001,Li Again\n")
    report = contacts.import_upload(db.session, "acme", io.BytesIO(data))
    assert (report.rows, report.accepted, report.duplicates, report.rejected) == (3, 2, 1, 1)
    assert report.rejects == [{"line": 4, "reason": "duplicate: +8613800000001 is already on "
                               "line 2; only the first row of a number is imported"}]
    assert stored(db) == {"+8613800000001": "Li", "+8613800000002": "Wang"}


def test_a_duplicate_in_an_atomic_import_stores_nothing(db):
    data = b"msisdn\n+8613800000001\n+8613800000001\n"
    report = contacts.import_upload(db.session, "acme", io.BytesIO(data), atomic=True)
    assert not report.written and report.accepted == 0 and report.duplicates == 1
    assert stored(db) == {}


def test_a_report_counts_as_accepted_exactly_what_is_stored_across_chunks(db):
    body = rows(1300)
    body[700] = b"not-a-number,Bad"
    body[1250] = body[3]
    report = contacts.import_upload(db.session, "acme", io.BytesIO(b"msisdn,name\n" + b"\n".join(body)))
    assert (report.rows, report.rejected, report.duplicates) == (1300, 2, 1)
    assert report.accepted == len(stored(db)) == 1298


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8", "utf-8-sig"])
def test_a_chinese_spreadsheet_with_chinese_headers_imports_in_its_encoding(db, encoding):
    text = "姓名,手机号,生日,标签\n张三,+8613800000001,1990-01-02,会员;北京\n李四,+8613800000002,,\n"
    report = contacts.import_upload(db.session, "acme", io.BytesIO(text.encode(encoding)))
    assert (report.accepted, report.rejected) == (2, 0)
    assert report.encoding == ("gb18030" if encoding.startswith("gb") else "utf-8")
    assert stored(db) == {"+8613800000001": "张三", "+8613800000002": "李四"}
    with db.session() as s:
        c = s.scalar(select(Contact).where(Contact.msisdn == "+8613800000001"))
        assert c.fields == {"birthday": "1990-01-02"} and c.tags == ["会员", "北京"]


def test_an_encoding_given_by_the_caller_is_used(db):
    data = "姓名,手機號\n陳大文,+85291234567\n".encode("big5")
    report = contacts.import_upload(db.session, "acme", io.BytesIO(data), encoding="big5")
    assert report.encoding == "big5" and stored(db) == {"+85291234567": "陳大文"}


def test_an_unknown_encoding_name_is_refused_with_names_that_work(db):
    with pytest.raises(contacts.CsvError, match="unknown; use a name such as utf-8, gb18030"):
        contacts.import_upload(db.session, "acme", io.BytesIO(b"msisdn\n"), encoding="klingon")


def test_a_damaged_utf8_file_is_not_read_as_gb18030_mojibake(db):
    # UTF-8 Chinese text happens to be valid GB18030 too; one bad byte must not switch readings.
    data = "手机号,姓名\n+8613800000001,张三\n+8613800000002,李四\n+8613800000003,王五\n".encode()
    with pytest.raises(contacts.CsvError, match="UTF-8 up to line 5"):
        contacts.import_upload(db.session, "acme", io.BytesIO(data + b"+8613800000004,\x81\n"))
    assert stored(db) == {}


def test_an_unmapped_chinese_header_is_refused_with_how_to_rename_it(db):
    data = "手机号,城市\n+8613800000001,上海\n".encode()
    with pytest.raises(contacts.CsvError) as exc:
        contacts.import_upload(db.session, "acme", io.BytesIO(data))
    message = str(exc.value)
    assert "'城市'" in message and "rename it in the first row" in message and "手机号 (msisdn)" in message


def test_a_chinese_inquiry_table_in_gbk_loads_with_any_key_column_name(db):
    with db.session() as s:
        c = campaigns.create(s, "acme", {"name": "orders", "kind": "inquiry", "config": {
            "keyword": "ORDER", "reply": "{status}"}}, now=datetime(2026, 6, 15, tzinfo=UTC))
        result = inquiry.load_table_upload(s, c, io.BytesIO("订单号,status\nA1,已发货\n".encode("gbk")))
    assert result["loaded"] == 1 and result["encoding"] == "gb18030"
    with db.session() as s:
        assert s.scalar(select(InquiryRow.data)) == {"status": "已发货"}


def test_an_inquiry_table_that_does_not_decode_is_refused_with_what_to_do(db):
    with db.session() as s:
        c = campaigns.create(s, "acme", {"name": "orders", "kind": "inquiry", "config": {
            "keyword": "ORDER", "reply": "{status}"}}, now=datetime(2026, 6, 15, tzinfo=UTC))
        with pytest.raises(CampaignError, match="CSV UTF-8"):
            inquiry.load_table_upload(s, c, io.BytesIO(b"key,status\nA1,\xff\n"))
