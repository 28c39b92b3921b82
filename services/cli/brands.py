"""``herald brands``, ``herald products``, ``herald batches``, ``herald codes``: the brand
scheme's set-up for scripts, through the same domain code as the console's brand pages
(services/console/domain/brands.py, code_jobs.py). Each command prints one line of JSON with
the ids the next command needs. (They replaced the verifier's own admin and codes scripts.)"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from services.core.settings import Settings

from .progress import Progress

ACTOR = "cli"


def _cmd(fn):
    def run(args: argparse.Namespace, s: Settings) -> int:
        from . import commands

        db = commands._db(s)
        try:
            return fn(args, s, db)
        except LookupError as exc:
            raise commands.CliError(f"not found: {exc}") from None
        finally:
            db.dispose()
    run.__name__ = fn.__name__
    return run


def _fail(exc) -> Exception:
    from .commands import USAGE, CliError

    field = getattr(exc, "field", "")
    return CliError(f"{field}: {exc.message}" if field else str(exc), USAGE)


@_cmd
def cmd_brands(args, s, db) -> int:
    from services.console.domain import audit
    from services.console.domain import brands as domain

    from .commands import _out, _tenant_exists

    with db.session() as ses:
        _tenant_exists(ses, args.tenant)
        if args.action == "list":
            for r in domain.brands(ses, args.tenant):
                b = r["brand"]
                _out({"id": b.id, "slug": b.slug, "name": b.name, "products": r["products"],
                      "batches": r["batches"]})
            return 0
        try:
            b = domain.create_brand(ses, args.tenant, slug=args.slug, name=args.name, name_zh=args.name_zh,
                                    language=args.language, timezone=args.timezone)
        except domain.BrandError as exc:
            raise _fail(exc) from None
        audit.record(ses, tenant_id=args.tenant, actor=ACTOR, action="create", object_type="brand",
                     object_id=b.slug, after=domain.brand_view(b))
        _out({"brand": b.id, "slug": b.slug})
    return 0


@_cmd
def cmd_products(args, s, db) -> int:
    from services.console.domain import audit
    from services.console.domain import brands as domain

    from .commands import _out, _tenant_exists

    with db.session() as ses:
        _tenant_exists(ses, args.tenant)
        if args.action == "list":
            brand_id = None
            if args.brand:
                b = domain.get_brand(ses, args.tenant, args.brand)
                if b is None:
                    raise LookupError(f"brand {args.brand}")
                brand_id = b.id
            for p in domain.products(ses, args.tenant, brand_id):
                _out({"id": p.id, "slug": p.slug, "name": p.name, "points": p.points, "brand_id": p.brand_id})
            return 0
        try:
            p = domain.create_product(ses, args.tenant, args.brand, slug=args.slug, name=args.name,
                                      name_zh=args.name_zh, points=args.points)
        except domain.BrandError as exc:
            raise _fail(exc) from None
        audit.record(ses, tenant_id=args.tenant, actor=ACTOR, action="create", object_type="product",
                     object_id=p.slug, after={"brand": args.brand, **domain.product_view(p)})
        _out({"product": p.id, "slug": p.slug})
    return 0


@_cmd
def cmd_batches(args, s, db) -> int:
    from services.console.domain import code_jobs

    from .commands import CliError, _out, _tenant_exists

    with db.session() as ses:
        _tenant_exists(ses, args.tenant)
    if args.action == "generate":
        out = Path(args.out)
        if out.exists():
            raise CliError(f"{out} exists; not overwriting a code file")
        try:
            batch_id = code_jobs.create(db, tenant_id=args.tenant, actor=ACTOR, product=args.product,
                                        count=args.count, note=args.note)
        except code_jobs.CodeJobError as exc:
            raise _fail(exc) from None
        bar = Progress(int(args.count), "generating", stream=sys.stderr)
        code_jobs.execute(db, s.secret_key, batch_id,
                          on_chunk=lambda done, _total: bar.advance(done - bar.done))
        bar.close()
        with db.session() as ses:
            row = code_jobs.get(ses, args.tenant, batch_id)
            if row.status != "done":
                raise CliError(f"batch {batch_id} failed: {row.rec.error}")
            f = code_jobs.download(ses, s.secret_key, args.tenant, batch_id, ACTOR)
            tmp = out.with_name(out.name + ".partial")
            with open(tmp, "wb") as w:
                while chunk := f.file.read(1 << 20):
                    w.write(chunk)
                w.flush()
                os.fsync(w.fileno())
            os.replace(tmp, out)
        _out({"batch": batch_id, "codes": row.printed, "file": str(out),
              "kind": f.filename.rsplit(".", 1)[1]})
        return 0
    with db.session() as ses:
        if args.action == "list":
            for r in code_jobs.batches(ses, args.tenant, limit=args.limit):
                _out({"batch": r.batch.id, "product": r.product.slug, "codes": r.printed, "status": r.status,
                      "created_at": r.batch.created_at})
            return 0
        row = code_jobs.get(ses, args.tenant, args.batch)
        if row is None:
            raise LookupError(f"batch {args.batch} of {args.tenant}")
        if args.action == "stats":
            _out({"batch": args.batch, "status": row.status, **code_jobs.stats(ses, row)})
            return 0
        try:
            changed = code_jobs.revoke(ses, args.tenant, args.batch, ACTOR)
        except code_jobs.CodeJobError as exc:
            raise _fail(exc) from None
        _out({"batch": args.batch, "revoked": True, "changed": changed})
    return 0


@_cmd
def cmd_codes(args, s, db) -> int:
    from services.verifier.domain.catalogue import Catalogue
    from services.verifier.domain.codes import CodeHasher, CodeImportError, import_codes, normalise

    from .commands import CliError, _out, _tenant_exists

    with db.session() as ses:
        _tenant_exists(ses, args.tenant)
        if args.action == "check":
            code = normalise(args.code)
            fits = [b.slug for b in Catalogue().brands(ses, args.tenant) if b.format.fits(code)]
            _out({"code_fits": fits})
            return 0 if fits else 1
        try:
            with open(args.file, encoding="utf-8-sig", newline="") as f:
                batch_id, n = import_codes(ses, CodeHasher(s.secret_key), args.tenant, args.product, f,
                                           note=args.note, check=not args.no_check)
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
        except CodeImportError as exc:
            raise CliError(f"nothing imported: {exc}") from None
        _out({"batch": batch_id, "codes": n})
    return 0


def add_commands(sub) -> None:
    sp = sub.add_parser("brands", help="a tenant's brands of the anti-counterfeit scheme")
    a = sp.add_subparsers(dest="action", required=True)
    a.add_parser("list").add_argument("tenant")
    c = a.add_parser("create")
    c.add_argument("tenant")
    c.add_argument("slug", help="short name: lower-case letters, digits, -")
    c.add_argument("--name", required=True)
    c.add_argument("--name-zh")
    c.add_argument("--language", default="auto", choices=["auto", "zh", "en"])
    c.add_argument("--timezone", default="Asia/Shanghai")
    sp.set_defaults(fn=cmd_brands)

    sp = sub.add_parser("products", help="a brand's products")
    a = sp.add_subparsers(dest="action", required=True)
    c = a.add_parser("list")
    c.add_argument("tenant")
    c.add_argument("--brand", help="only this brand's (short name)")
    c = a.add_parser("create")
    c.add_argument("tenant")
    c.add_argument("brand", help="the brand's short name")
    c.add_argument("slug", help="the product's short name")
    c.add_argument("--name", required=True)
    c.add_argument("--name-zh")
    c.add_argument("--points", type=int, default=0, help="points a genuine code earns")
    sp.set_defaults(fn=cmd_products)

    sp = sub.add_parser("batches", help="generate, list, show or revoke code batches")
    a = sp.add_subparsers(dest="action", required=True)
    c = a.add_parser("generate", help="generate codes and write the printable file (CSV, or ZIP of "
                                      "CSVs above 100,000 codes) once")
    c.add_argument("tenant")
    c.add_argument("product", help="the product's short name or id")
    c.add_argument("--count", required=True)
    c.add_argument("--out", required=True, help="file to write (refuses to overwrite)")
    c.add_argument("--note", default="")
    c = a.add_parser("list")
    c.add_argument("tenant")
    c.add_argument("--limit", type=int, default=50)
    for name in ("stats", "revoke"):
        c = a.add_parser(name)
        c.add_argument("tenant")
        c.add_argument("batch", type=int)
    sp.set_defaults(fn=cmd_batches)

    sp = sub.add_parser("codes", help="import codes printed elsewhere, or check a code's format")
    a = sp.add_subparsers(dest="action", required=True)
    c = a.add_parser("import")
    c.add_argument("tenant")
    c.add_argument("product")
    c.add_argument("file", help="CSV, the code in the first column")
    c.add_argument("--note", default="")
    c.add_argument("--no-check", action="store_true", help="accept codes without Herald's check symbol")
    c = a.add_parser("check")
    c.add_argument("tenant")
    c.add_argument("code")
    sp.set_defaults(fn=cmd_codes)
