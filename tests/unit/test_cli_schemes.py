"""``herald lottery|gifts|points|members``: the scheme operations for scripts, each printing the
ids the next command needs, refusing what the console refuses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.cli import main as run
from services.cli.commands import OK, USAGE
from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.schemes import CodeQuery, PrizeCard
from services.core.tenancy import create_tenant
from services.verifier.domain import admin


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'herald.db'}"
    upgrade(url)
    monkeypatch.setenv("HERALD_DATABASE_URL", url)
    database = Database(url)
    with database.session() as s:
        create_tenant(s, "acme", "Acme")
        admin.create_brand(s, "acme", "gold", "Gold")
        p = admin.create_product(s, "acme", "gold", "gold-20", "Gold 20s", points=10)
        s.add(CodeQuery(submission_id=str(uuid.uuid4()), tenant_id="acme", brand_id=p.brand_id, product_id=p.id,
                        msisdn="+8613900000001", reply_from="10690001", outcome="genuine",
                        received_at=datetime.now(UTC)))
    yield database
    database.dispose()


def out(capsys) -> list:
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]


def test_a_lottery_is_created_and_its_tiers_get_cards_from_a_file(db, capsys, tmp_path):
    assert run(["lottery", "create", "--tenant", "acme", "--brand", "gold", "--name", "Spring",
                "--tier", "50 yuan card:0.05:10:2:5000", "--tier", "small:0.1:100"]) == OK
    created, = out(capsys)
    tier = created["tiers"][0]["id"]
    cards = tmp_path / "cards.csv"
    cards.write_text("card_number,password\nC1,secret-1\nC2,secret-2\n")
    assert run(["lottery", "cards", "--tenant", "acme", "--tier", str(tier), "--file", str(cards)]) == OK
    assert out(capsys) == [{"tier": tier, "cards_added": 2}]
    assert run(["lottery", "list", "--tenant", "acme"]) == OK
    listed, = out(capsys)
    assert listed["tiers"][0]["free"] == 2 and listed["tiers"][0]["daily_cap"] == 2
    with db.session() as s:
        assert all(b"secret" not in c.password_enc for c in s.query(PrizeCard))


def test_bad_input_is_refused_naming_the_line_or_field_and_nothing_is_stored(db, capsys, tmp_path):
    assert run(["lottery", "create", "--tenant", "acme", "--brand", "gold", "--name", "X",
                "--tier", "a:0.6:1", "--tier", "b:0.6:1"]) == USAGE
    assert "tiers-1-odds" in capsys.readouterr().err
    assert run(["lottery", "create", "--tenant", "acme", "--brand", "gold", "--name", "Y",
                "--tier", "a:0.5:1"]) == OK
    tier = out(capsys)[0]["tiers"][0]["id"]
    cards = tmp_path / "dup.csv"
    cards.write_text("card_number,password\nC1,p\nC1,q\n")
    assert run(["lottery", "cards", "--tenant", "acme", "--tier", str(tier), "--file", str(cards)]) == USAGE
    assert "Line 3: card C1 is already on line 2." in capsys.readouterr().err
    with db.session() as s:
        assert s.query(PrizeCard).count() == 0
    assert run(["points", "thresholds", "--tenant", "acme", "200", "100"]) == USAGE
    assert "thresholds-1-points" in capsys.readouterr().err


def test_gifts_thresholds_and_a_members_balance(db, capsys, tmp_path):
    assert run(["gifts", "add", "--tenant", "acme", "--number", "1", "--name", "Tea", "--cost", "20"]) == OK
    gift = out(capsys)[0]["gift"]
    cards = tmp_path / "gifts.csv"
    cards.write_text("卡号,密码\nG1,pw\n")
    assert run(["gifts", "cards", "--tenant", "acme", "--gift", str(gift), "--file", str(cards)]) == OK
    assert out(capsys) == [{"gift": gift, "cards_added": 1}]
    assert run(["points", "thresholds", "--tenant", "acme", "20", "100"]) == OK
    assert out(capsys) == [{"thresholds": [20, 100]}]
    assert run(["points", "member", "--tenant", "acme", "+8613900000001"]) == OK
    assert out(capsys)[0]["balance"] == 0


def test_members_audience_clubs_and_a_research_list(db, capsys):
    assert run(["members", "audience", "--tenant", "acme", "--product", "gold-20"]) == OK
    assert out(capsys) == [{"number": "+8613900000001"}]
    assert run(["members", "club", "open", "--tenant", "acme", "--club", "vip"]) == OK
    assert out(capsys)[0]["join"] == "SUB VIP"
    assert run(["members", "club", "join", "--tenant", "acme", "--club", "VIP", "--number", "+8613900000002"]) == OK
    assert out(capsys)[0]["changed"] is True
    assert run(["members", "club", "list", "--tenant", "acme", "--club", "VIP"]) == OK
    assert [m["number"] for m in out(capsys)] == ["+8613900000002"]
    assert run(["members", "invite-list", "--tenant", "acme", "--product", "gold-20", "--list", "Survey"]) == OK
    assert out(capsys)[0]["participants"] == 1
