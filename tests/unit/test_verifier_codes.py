"""Codes: format and check symbol, generation from a cryptographic source, storage as keyed
hashes only, import of existing codes."""

from __future__ import annotations

import collections
import csv
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.cli.commands import main as herald
from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.schemes import DEFAULT_ALPHABET, Code, CodeBatch
from services.verifier.demo import seed_scheme
from services.verifier.domain.codes import (
    CodeFormat,
    CodeFormatError,
    CodeHasher,
    CodeImportError,
    generate_batch,
    import_codes,
    normalise,
)

SECRET = "test-secret"
FMT = CodeFormat()


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        seed_scheme(s, SECRET, codes=0)
    return sqlite_db


def test_default_alphabet_has_no_look_alikes():
    assert not set("0O1I") & set(DEFAULT_ALPHABET)
    assert len(DEFAULT_ALPHABET) == 32 and FMT.size == 12 and FMT.bits == 55


@given(st.text(alphabet=DEFAULT_ALPHABET, min_size=11, max_size=11))
def test_a_made_code_fits_and_every_single_mistyped_symbol_is_caught(body):
    code = FMT.make(body)
    assert FMT.fits(code)
    for i, wrong in itertools.product(range(len(code)), DEFAULT_ALPHABET):
        if wrong != code[i]:
            assert not FMT.fits(code[:i] + wrong + code[i + 1:])


def test_most_swaps_of_neighbours_are_caught():
    caught = total = 0
    for code in FMT.generate(300):
        for i in range(len(code) - 1):
            if code[i] != code[i + 1]:
                total += 1
                caught += not FMT.fits(code[:i] + code[i + 1] + code[i] + code[i + 2:])
    assert caught / total > 0.95


def test_codes_of_a_wrong_length_or_outside_the_alphabet_do_not_fit():
    code = FMT.generate(1)[0]
    assert not FMT.fits(code[:-1]) and not FMT.fits(code + "A")
    assert not FMT.fits(code[:3] + "0" + code[4:]) and not FMT.fits(code[:3] + "O" + code[4:])


def test_generated_codes_are_distinct_and_every_symbol_is_equally_likely():
    fmt = CodeFormat("ABCDEFGHJKLMNPQRSTUVWXYZ2345679", 8)  # 31 symbols: rejection sampling at work
    codes = fmt.generate(20000)
    assert len(set(codes)) == 20000 and all(fmt.fits(c) and len(c) == 9 for c in codes)
    counts = collections.Counter("".join(c[:-1] for c in codes))
    expected = 20000 * 8 / 31
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    assert len(counts) == 31 and chi2 < 80  # 30 degrees of freedom: p < 1e-6 above ~80


@pytest.mark.parametrize("alphabet,length", [("AAB" + "CDEFGHIJ", 8), ("abcdefghij", 8), ("ABCDEFGHIJ", 2),
                                             ("ABC", 8)])
def test_bad_formats_are_refused(alphabet, length):
    with pytest.raises(CodeFormatError):
        CodeFormat(alphabet, length)


def test_normalise_drops_separators_and_upper_cases():
    assert normalise(" k7qm-4xpd 2h9a ") == "K7QM4XPD2H9A"


def test_the_hash_is_keyed_by_secret_and_tenant():
    h1, h2 = CodeHasher("a"), CodeHasher("b")
    assert h1("acme", "K7QM4XPD2H9A") != h2("acme", "K7QM4XPD2H9A")
    assert h1("acme", "K7QM4XPD2H9A") != h1("globex", "K7QM4XPD2H9A")
    assert list(h1.many("acme", ["K7QM4XPD2H9A"])) == [h1("acme", "K7QM4XPD2H9A")]
    assert "a" not in repr(h1).replace("CodeHasher", "")


def test_a_generated_batch_goes_to_the_csv_in_clear_and_to_the_database_only_as_hashes(db, tmp_path):
    out = tmp_path / "codes.csv"
    batch_id, n = generate_batch(db.session, CodeHasher(SECRET), "acme", "gold-20", 2000, out)
    rows = list(csv.DictReader(out.open()))
    assert n == 2000 and len(rows) == 2000 and {r["batch"] for r in rows} == {str(batch_id)}
    assert rows[0]["printed"].replace("-", "") == rows[0]["code"] and FMT.fits(rows[0]["code"])
    hasher = CodeHasher(SECRET)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Code).where(Code.batch_id == batch_id)) == 2000
        stored = set(s.scalars(select(Code.code_hash)))
        assert s.get(CodeBatch, batch_id).size == 2000
    assert {hasher("acme", r["code"]) for r in rows} <= stored
    raw = (tmp_path / "herald.db").read_bytes()
    for r in rows[:200]:
        assert r["code"].encode() not in raw


def test_import_accepts_a_good_file_and_refuses_duplicates_and_malformed_codes(db):
    codes = FMT.generate(50)
    with db.session() as s:
        batch_id, n = import_codes(s, CodeHasher(SECRET), "acme", "gold-20", ["code"] + codes)
    assert n == 50
    with pytest.raises(CodeImportError, match="line 3: duplicate of line 2"), db.session() as s:
        import_codes(s, CodeHasher(SECRET), "acme", "gold-20", ["code", codes[0], codes[0]])
    with pytest.raises(CodeImportError, match="already stored"), db.session() as s:
        import_codes(s, CodeHasher(SECRET), "acme", "gold-20", [FMT.generate(1)[0], codes[7]])
    with pytest.raises(CodeImportError, match="line 1: .* does not fit"), db.session() as s:
        import_codes(s, CodeHasher(SECRET), "acme", "gold-20", [codes[0][:-1] + "Z" if codes[0][-1] != "Z" else
                                                                codes[0][:-1] + "Y"])
    with db.session() as s:  # codes printed by someone else, without our check symbol
        _, n = import_codes(s, CodeHasher(SECRET), "acme", "gold-20", ["LEGACY0001", "LEGACY0002"], check=False)
        assert n == 2
        assert s.scalar(select(func.count()).select_from(Code)) == 52


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=1, max_value=40))
def test_the_cli_generates_then_refuses_to_overwrite(tmp_path_factory, count):
    tmp = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{tmp / 'h.db'}"
    upgrade(url)
    d = Database(url)
    with d.session() as s:
        seed_scheme(s, SECRET, codes=0)
    d.dispose()
    import os
    env = {"HERALD_DATABASE_URL": url, "HERALD_SECRET_KEY": SECRET}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from services.core.settings import get_settings
    get_settings.cache_clear()
    try:
        out = tmp / "c.csv"
        assert herald(["batches", "generate", "acme", "gold-20", "--count", str(count),
                       "--out", str(out)]) == 0
        assert len(out.read_text().splitlines()) == count + 1
        assert herald(["batches", "generate", "acme", "gold-20", "--count", "1",
                       "--out", str(out)]) != 0
        imp = tmp / "i.csv"
        imp.write_text("\n".join(FMT.generate(3)))
        assert herald(["codes", "import", "acme", "gold-20", str(imp)]) == 0
        assert herald(["codes", "import", "acme", "nope", str(imp)]) != 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def test_a_batch_is_stored_and_a_duplicate_refused_on_each_database(database_url):
    upgrade(database_url)
    d = Database(database_url)
    try:
        with d.session() as s:
            scheme = seed_scheme(s, SECRET, codes=5000)
        hasher = CodeHasher(SECRET)
        with d.session() as s:
            assert s.scalar(select(func.count()).select_from(Code)) == 5000
            assert s.scalar(select(Code.id).where(Code.code_hash == hasher("acme", scheme.codes[4321]))) is not None
        with pytest.raises(CodeImportError, match="line 2: that code is already stored"), d.session() as s:
            import_codes(s, hasher, "acme", "gold-20", [FMT.generate(1)[0], scheme.codes[17]])
        with d.session() as s:
            assert s.scalar(select(func.count()).select_from(Code)) == 5000
    finally:
        d.dispose()


def test_the_schemes_migration_branch_goes_down_and_up_again(database_url):
    from alembic import command
    from sqlalchemy import inspect

    from services.core.db.migrate import alembic_config
    from services.core.db.session import make_engine

    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "schemes@0001")
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert "codes" not in tables and "ledger_entries" not in tables and "tenants" in tables
        engine.dispose()
        upgrade(database_url)
        assert {"codes", "ledger_entries", "prize_cards"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
