"""The ``herald`` commands for brands, products and code batches: the same domain code as the
console's pages, one line of JSON with the ids the next command needs."""

from __future__ import annotations

import json

from services.cli.commands import main
from services.console.domain import code_jobs
from services.verifier.domain.codes import CodeFormat

from .brand_fixtures import verify


def _run(capsys, db, *argv) -> tuple[int, list[dict], str]:
    code = main(["--database-url", db.url, *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_a_script_creates_a_brand_a_product_and_a_batch_and_revokes_it(console_db, capsys, tmp_path):
    code, out, _ = _run(capsys, console_db, "brands", "create", "acme", "gold", "--name", "Gold Leaf")
    assert code == 0 and out[0]["slug"] == "gold" and isinstance(out[0]["brand"], int)
    code, out, _ = _run(capsys, console_db, "products", "create", "acme", "gold", "gold-20", "--name",
                        "Gold 20s", "--points", "5")
    assert code == 0 and out[0]["slug"] == "gold-20"
    target = tmp_path / "codes.csv"
    code, out, err = _run(capsys, console_db, "batches", "generate", "acme", "gold-20", "--count", "300",
                          "--out", str(target))
    assert code == 0 and out[0]["codes"] == 300 and out[0]["kind"] == "csv" and "generating" in err
    batch_id = out[0]["batch"]
    codes = code_jobs.codes_in_file(target.read_bytes())
    assert len(set(codes)) == 300 and all(CodeFormat().fits(c) for c in codes)
    assert verify(console_db, "acme", codes[0], "+8613812345678") == "genuine"
    code, out, _ = _run(capsys, console_db, "batches", "stats", "acme", str(batch_id))
    assert out[0] == {"batch": batch_id, "status": "done", "printed": 300, "verified": 1, "repeats": 0}
    code, out, _ = _run(capsys, console_db, "batches", "list", "acme")
    assert [r["batch"] for r in out] == [batch_id]
    code, out, _ = _run(capsys, console_db, "batches", "revoke", "acme", str(batch_id))
    assert code == 0 and out[0]["changed"] is True
    assert verify(console_db, "acme", codes[1], "+8613812345678") == "counterfeit"


def test_bad_input_is_refused_naming_the_field_and_another_tenants_batch_is_not_found(console_db, capsys,
                                                                                       tmp_path):
    code, _, err = _run(capsys, console_db, "brands", "create", "acme", "Bad Slug", "--name", "X")
    assert code == 2 and "slug:" in err
    _run(capsys, console_db, "brands", "create", "acme", "gold", "--name", "Gold")
    _run(capsys, console_db, "products", "create", "acme", "gold", "gold-20", "--name", "G")
    code, _, err = _run(capsys, console_db, "batches", "generate", "acme", "gold-20", "--count", "0",
                        "--out", str(tmp_path / "x.csv"))
    assert code == 2 and "count:" in err and not (tmp_path / "x.csv").exists()
    _, out, _ = _run(capsys, console_db, "batches", "generate", "acme", "gold-20", "--count", "3",
                     "--out", str(tmp_path / "y.csv"))
    code, _, err = _run(capsys, console_db, "batches", "revoke", "other", str(out[0]["batch"]))
    assert code == 1 and "not found" in err
    code, _, err = _run(capsys, console_db, "batches", "generate", "other", "gold-20", "--count", "3",
                        "--out", str(tmp_path / "z.csv"))
    assert code == 2 and "product:" in err
