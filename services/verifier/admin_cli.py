"""Brand administration for the anti-counterfeit scheme.

    python -m services.verifier.admin_cli CMD ...
      brand       --tenant T --slug gold --name "Gold Leaf" [--name-zh 金叶]
      product     --tenant T --brand gold --slug gold-20 --name "Gold 20s" --points 10
      lottery     --tenant T --brand gold --name Spring --tier "50 yuan card:0.01:100:5000"
                  [--budget-cents 500000] [--product gold-20]
      prize-cards --tier-id 1 --file cards.csv        (card_number,password,instructions)
      audience    --tenant T --product gold-20
      invite      --tenant T --product gold-20 --campaign club-2025 --text "..."
      club join|leave --tenant T --brand gold --club vip --number +86...

Club JOIN/LEAVE by SMS needs the router to hand those keywords over: ``points.commands`` v1 has
no such command, so until a schema carries them this entry (and ``admin.set_club_membership``)
is how memberships change.
"""

from __future__ import annotations

import argparse
import sys

from services.core.db import Database
from services.core.kafka import AsyncProducer
from services.core.secrets import SecretBox
from services.core.settings import get_settings

from .domain import admin


def _tier(text: str) -> admin.TierSpec:
    name, odds, cap, *value = text.rsplit(":", 3) if text.count(":") >= 3 else text.rsplit(":", 2)
    return admin.TierSpec(name, float(odds), int(cap), int(value[0]) if value else 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m services.verifier.admin_cli", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("brand")
    b.add_argument("--tenant", required=True)
    b.add_argument("--slug", required=True)
    b.add_argument("--name", required=True)
    b.add_argument("--name-zh")
    b.add_argument("--timezone", default="UTC")
    b.add_argument("--language", default="auto", choices=["auto", "zh", "en"])
    b.add_argument("--lockout-max-invalid", type=int, default=5)
    b.add_argument("--lockout-window-s", type=int, default=3600)
    b.add_argument("--lockout-duration-s", type=int, default=3600)
    p = sub.add_parser("product")
    p.add_argument("--tenant", required=True)
    p.add_argument("--brand", required=True)
    p.add_argument("--slug", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--name-zh")
    p.add_argument("--points", type=int, default=0)
    lo = sub.add_parser("lottery")
    lo.add_argument("--tenant", required=True)
    lo.add_argument("--brand", required=True)
    lo.add_argument("--name", required=True)
    lo.add_argument("--tier", action="append", required=True, help="name:odds:cap[:value_cents]")
    lo.add_argument("--budget-cents", type=int)
    lo.add_argument("--product")
    pc = sub.add_parser("prize-cards")
    pc.add_argument("--tier-id", type=int, required=True)
    pc.add_argument("--file", required=True)
    au = sub.add_parser("audience")
    au.add_argument("--tenant", required=True)
    au.add_argument("--product", required=True)
    iv = sub.add_parser("invite")
    iv.add_argument("--tenant", required=True)
    iv.add_argument("--product", required=True)
    iv.add_argument("--campaign", required=True)
    iv.add_argument("--text", required=True)
    iv.add_argument("--sender")
    cl = sub.add_parser("club")
    cl.add_argument("action", choices=["join", "leave"])
    cl.add_argument("--tenant", required=True)
    cl.add_argument("--brand", required=True)
    cl.add_argument("--club", required=True)
    cl.add_argument("--number", required=True)
    args = ap.parse_args(argv)

    settings = get_settings()
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            if args.cmd == "brand":
                brand = admin.create_brand(s, args.tenant, args.slug, args.name, name_zh=args.name_zh,
                                           timezone=args.timezone, language=args.language,
                                           lockout_max_invalid=args.lockout_max_invalid,
                                           lockout_window_s=args.lockout_window_s,
                                           lockout_duration_s=args.lockout_duration_s)
                print(f"brand {brand.id} {brand.slug}")
            elif args.cmd == "product":
                product = admin.create_product(s, args.tenant, args.brand, args.slug, args.name, args.points,
                                               args.name_zh)
                print(f"product {product.id} {product.slug}")
            elif args.cmd == "lottery":
                tiers = [_tier(t) for t in args.tier]
                lot = admin.create_lottery(s, args.tenant, args.brand, args.name, tiers,
                                           budget_cents=args.budget_cents, product_slug=args.product)
                print(f"lottery {lot.id}")
            elif args.cmd == "prize-cards":
                with open(args.file, encoding="utf-8-sig", newline="") as f:
                    n = admin.add_prize_cards(s, SecretBox(settings.secret_key), args.tier_id,
                                              admin.read_cards(f))
                print(f"{n} cards added to tier {args.tier_id}")
            elif args.cmd == "audience":
                pid = admin.product_id(s, args.tenant, args.product)
                query = admin.audience(args.tenant, pid).execution_options(yield_per=1000)
                for number in s.execute(query).scalars():
                    print(number)
            elif args.cmd == "invite":
                import asyncio
                outs = list(admin.invite_product_audience(s, args.tenant, args.product, args.text,
                                                          args.campaign, args.sender))
                producer = AsyncProducer(settings)
                try:
                    asyncio.run(producer.send_many([(o.topic, o.value, o.key) for o in outs]))
                finally:
                    producer.close()
                print(f"{len(outs)} invitations sent to sms.outbound")
            elif args.cmd == "club":
                status = "joined" if args.action == "join" else "left"
                changed = admin.set_club_membership(s, args.tenant, args.brand, args.club, args.number,
                                                    status, source="admin")
                print("changed" if changed else "unchanged")
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
