"""``herald`` commands for the Level-3 schemes' lotteries, points and gifts, and members (they
replaced the verifier's own admin script):

    herald lottery create --tenant T --brand gold --name Spring --tier "50 yuan card:0.01:100[:5[:5000]]"
    herald lottery list --tenant T
    herald lottery cards --tenant T --tier 3 --file cards.csv      (card_number,password[,instructions])
    herald lottery draws --tenant T --lottery 1 [--outcome won]
    herald gifts add --tenant T --number 1 --name "Tea voucher" --cost 100
    herald gifts list --tenant T
    herald gifts cards --tenant T --gift 2 --file gifts.csv
    herald points thresholds --tenant T 100 500
    herald points member --tenant T +8613812345678
    herald members audience --tenant T --product gold-20
    herald members club open|join|leave|list --tenant T --club VIP [--number +86...]
    herald members invite-list --tenant T --product gold-20 --list "Gold buyers survey"

Each prints one line of JSON with the ids the next command needs. The same domain functions as
the console's lottery, points and club pages do the work, so the same rules refuse the same
input (a card file naming its bad lines, odds over 1, thresholds out of order)."""

from __future__ import annotations

import argparse
from typing import Any

from services.core.settings import Settings

TIER_HELP = "name:odds:cap[:daily_cap[:value_cents]] (repeat for each tier)"


def _tier(text: str):
    from services.verifier.domain import lottery_admin as la

    parts = text.rsplit(":", 4) if text.count(":") >= 4 else text.split(":")
    if len(parts) < 3:
        raise ValueError(f"a tier is {TIER_HELP}: {text!r}")
    name, odds, cap, *rest = parts
    daily = int(rest[0]) if rest and rest[0] else None
    value = int(rest[1]) if len(rest) > 1 and rest[1] else 0
    return la.TierIn(name=name, odds=float(odds), cap=int(cap), daily_cap=daily, value_cents=value)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def cmd_lottery(args: argparse.Namespace, s: Settings) -> int:
    from services.core.card_files import parse_cards
    from services.core.secrets import SecretBox
    from services.verifier.domain import admin
    from services.verifier.domain import lottery_admin as la

    def run(ses) -> Any:
        if args.action == "create":
            brand = admin.brand_by_slug(ses, args.tenant, args.brand)
            product = admin.product_id(ses, args.tenant, args.product) if args.product else None
            lot = la.create_lottery(ses, args.tenant, brand.id, args.name, [_tier(t) for t in args.tier],
                                    product_id=product, budget_cents=args.budget_cents)
            view = la.lottery(ses, args.tenant, lot.id)
            return {"lottery": lot.id, "tiers": [{"id": t.tier.id, "name": t.tier.name} for t in view.tiers]}
        if args.action == "list":
            return [{"lottery": v.lottery.id, "name": v.lottery.name, "active": v.lottery.active,
                     "brand": v.brand,
                     "tiers": [{"id": t.tier.id, "name": t.tier.name, "odds": t.tier.odds, "cap": t.tier.cap,
                                "daily_cap": t.tier.daily_cap, "awarded": t.tier.awarded, "cards": t.cards,
                                "free": t.free, "low_stock": t.low} for t in v.tiers]}
                    for v in la.lotteries(ses, args.tenant)]
        if args.action == "cards":
            rows = parse_cards(_read(args.file))
            n = la.upload_cards(ses, SecretBox(s.secret_key), args.tenant, args.tier, rows)
            return {"tier": args.tier, "cards_added": n}
        draws = la.draws(ses, args.tenant, args.lottery, outcome=args.outcome, limit=args.limit)
        return [{"draw": d.id, "drawn_at": d.drawn_at, "number": d.number, "outcome": d.outcome,
                 "tier": d.tier, "card": d.card, "random_value": d.random_value} for d in draws]

    return _run(s, run, lines=args.action in ("list", "draws"))


def cmd_gifts(args: argparse.Namespace, s: Settings) -> int:
    from services.core.card_files import parse_cards
    from services.core.secrets import SecretBox
    from services.ledger import admin as ledger_admin

    def run(ses) -> Any:
        if args.action == "add":
            g = ledger_admin.add_gift(ses, args.tenant, args.number, args.name, args.cost, args.name_zh)
            return {"gift": g.id, "number": g.number}
        if args.action == "list":
            return [{"gift": g.gift.id, "number": g.gift.number, "name": g.gift.name, "cost": g.gift.cost,
                     "active": g.gift.active, "cards": g.cards, "free": g.free, "redeemed": g.redeemed,
                     "low_stock": g.low} for g in ledger_admin.gifts(ses, args.tenant)]
        n = ledger_admin.upload_gift_cards(ses, SecretBox(s.secret_key), args.tenant, args.gift,
                                           parse_cards(_read(args.file)))
        return {"gift": args.gift, "cards_added": n}

    return _run(s, run, lines=args.action == "list")


def cmd_points(args: argparse.Namespace, s: Settings) -> int:
    from services.ledger import admin as ledger_admin

    def run(ses) -> Any:
        if args.action == "thresholds":
            _before, after = ledger_admin.set_thresholds(
                ses, args.tenant, [ledger_admin.ThresholdIn(p) for p in args.points])
            return after
        m = ledger_admin.member(ses, args.tenant, args.number, limit=args.limit)
        if m is None:
            return {"member": args.number, "balance": 0, "entries": []}
        return {"member": m.member, "balance": m.balance, "earned": m.earned, "spent": m.spent,
                "entries": [{"at": e.created_at, "points": e.points, "kind": e.kind, "reason": e.reason,
                             "balance_after": e.balance_after} for e in m.entries]}

    return _run(s, run)


def cmd_members(args: argparse.Namespace, s: Settings) -> int:
    from services.campaigns.domain.subscriptions import create_topic
    from services.console.domain import club
    from services.verifier.domain import admin

    def run(ses) -> Any:
        if args.action == "audience":
            pid = admin.product_id(ses, args.tenant, args.product)
            return [{"number": n} for n in ses.execute(
                admin.audience(args.tenant, pid).execution_options(yield_per=1000)).scalars()]
        if args.action == "invite-list":
            pid = admin.product_id(ses, args.tenant, args.product) if args.product else None
            list_id, n = club.invite_list(ses, args.tenant, args.list, product_id=pid, club_name=args.club)
            return {"list": list_id, "participants": n}
        if args.club_action == "open":
            t = create_topic(ses, args.tenant, {"name": args.club, "description": args.description or ""})
            return {"club": t.name, "join": f"SUB {t.name}", "leave": f"UNSUB {t.name}"}
        if args.club_action == "list":
            return [{"number": m.msisdn, "joined_at": m.subscribed_at}
                    for m in club.members(ses, args.tenant, args.club, limit=args.limit)]
        if not args.number:
            raise ValueError("--number is needed to join or leave")
        change = club.join if args.club_action == "join" else club.leave
        changed = change(ses, args.tenant, args.club, args.number)
        return {"club": args.club.upper(), "number": args.number, "changed": changed}

    return _run(s, run, lines=args.action == "audience" or getattr(args, "club_action", "") == "list")


def _run(s: Settings, fn, lines: bool = False) -> int:
    from services.campaigns.domain.campaigns import CampaignError
    from services.campaigns.domain.contacts import ContactError
    from services.core.card_files import CardFileError

    from .commands import USAGE, CliError, _db, _out

    db = _db(s)
    try:
        with db.session() as ses:
            result = fn(ses)
    except CardFileError as exc:
        raise CliError("the file is refused, nothing was stored:\n  " + "\n  ".join(exc.problems),
                       USAGE) from None
    except (LookupError, ValueError, CampaignError, ContactError) as exc:
        field = getattr(exc, "field", None)
        raise CliError(f"{field}: {exc}" if field else str(exc), USAGE) from None
    finally:
        db.dispose()
    for item in (result if lines else [result]):
        _out(item)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("lottery", help="lotteries: tiers, prize-card uploads, the draw log")
    a = sp.add_subparsers(dest="action", required=True)
    c = a.add_parser("create")
    c.add_argument("--tenant", required=True)
    c.add_argument("--brand", required=True, help="the brand's slug")
    c.add_argument("--name", required=True)
    c.add_argument("--tier", action="append", required=True, help=TIER_HELP)
    c.add_argument("--product", help="a product's slug (default: every product of the brand)")
    c.add_argument("--budget-cents", type=int)
    a.add_parser("list").add_argument("--tenant", required=True)
    c = a.add_parser("cards", help="upload a tier's prize cards (CSV: card_number,password[,instructions])")
    c.add_argument("--tenant", required=True)
    c.add_argument("--tier", type=int, required=True)
    c.add_argument("--file", required=True)
    c = a.add_parser("draws")
    c.add_argument("--tenant", required=True)
    c.add_argument("--lottery", type=int, required=True)
    c.add_argument("--outcome")
    c.add_argument("--limit", type=int, default=50)
    sp.set_defaults(fn=cmd_lottery)

    sp = sub.add_parser("gifts", help="the gift catalogue and its virtual cards")
    a = sp.add_subparsers(dest="action", required=True)
    c = a.add_parser("add")
    c.add_argument("--tenant", required=True)
    c.add_argument("--number", type=int, required=True, help="what members text: GIFT <number>")
    c.add_argument("--name", required=True)
    c.add_argument("--name-zh")
    c.add_argument("--cost", type=int, required=True)
    a.add_parser("list").add_argument("--tenant", required=True)
    c = a.add_parser("cards")
    c.add_argument("--tenant", required=True)
    c.add_argument("--gift", type=int, required=True, help="the gift's id (from gifts add / list)")
    c.add_argument("--file", required=True)
    sp.set_defaults(fn=cmd_gifts)

    sp = sub.add_parser("points", help="points thresholds and a member's balance")
    a = sp.add_subparsers(dest="action", required=True)
    c = a.add_parser("thresholds")
    c.add_argument("--tenant", required=True)
    c.add_argument("points", type=int, nargs="*", help="in increasing order")
    c = a.add_parser("member")
    c.add_argument("--tenant", required=True)
    c.add_argument("number")
    c.add_argument("--limit", type=int, default=50)
    sp.set_defaults(fn=cmd_points)

    sp = sub.add_parser("members", help="verified buyers, clubs, research lists")
    a = sp.add_subparsers(dest="action", required=True)
    c = a.add_parser("audience", help="the numbers that verified a product")
    c.add_argument("--tenant", required=True)
    c.add_argument("--product", required=True)
    c = a.add_parser("invite-list", help="a contact list of a product's buyers or a club's members")
    c.add_argument("--tenant", required=True)
    c.add_argument("--list", required=True)
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--product")
    g.add_argument("--club")
    c = a.add_parser("club")
    c.add_argument("club_action", choices=["open", "join", "leave", "list"])
    c.add_argument("--tenant", required=True)
    c.add_argument("--club", required=True)
    c.add_argument("--number")
    c.add_argument("--description")
    c.add_argument("--limit", type=int, default=200)
    sp.set_defaults(fn=cmd_members)
