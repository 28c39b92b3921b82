"""Code batches for the card printer.

    python -m services.verifier.codes_cli generate --tenant T --product P --count N --out codes.csv
    python -m services.verifier.codes_cli import   --tenant T --product P --file codes.csv [--no-check]
    python -m services.verifier.codes_cli check    --tenant T CODE

``generate`` writes the codes once, to the CSV (columns code, printed, product, batch); the
database keeps only their keyed hashes, so keep the file safe and delete it once printed.
Database and secret key come from the settings (HERALD_DATABASE_URL, HERALD_SECRET_KEY).
"""

from __future__ import annotations

import argparse
import sys
import time

from services.core.db import Database
from services.core.settings import get_settings

from .domain.catalogue import Catalogue
from .domain.codes import CodeHasher, CodeImportError, generate_batch, import_codes, normalise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m services.verifier.codes_cli", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="generate a batch of codes for a product and write them to a CSV")
    g.add_argument("--tenant", required=True)
    g.add_argument("--product", required=True, help="product slug")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--out", required=True, help="CSV file to write (refuses to overwrite)")
    g.add_argument("--note", default="")
    i = sub.add_parser("import", help="import existing codes (CSV, code in the first column)")
    i.add_argument("--tenant", required=True)
    i.add_argument("--product", required=True)
    i.add_argument("--file", required=True)
    i.add_argument("--note", default="")
    i.add_argument("--no-check", action="store_true",
                   help="accept codes without our check symbol (typos then read as counterfeits)")
    c = sub.add_parser("check", help="does a code fit one of the tenant's brand formats?")
    c.add_argument("--tenant", required=True)
    c.add_argument("code")
    args = ap.parse_args(argv)

    settings = get_settings()
    db = Database(settings.database_url)
    hasher = CodeHasher(settings.secret_key)
    try:
        if args.cmd == "generate":
            import os
            if os.path.exists(args.out):
                print(f"{args.out} exists; not overwriting a code file", file=sys.stderr)
                return 2
            t0 = time.perf_counter()
            batch_id, n = generate_batch(db.session, hasher, args.tenant, args.product, args.count, args.out,
                                         note=args.note)
            dt = time.perf_counter() - t0
            print(f"batch {batch_id}: {n} codes stored and written to {args.out} in {dt:.1f}s "
                  f"({n / dt:,.0f} codes/s)")
        elif args.cmd == "import":
            with open(args.file, encoding="utf-8-sig", newline="") as f, db.session() as s:
                batch_id, n = import_codes(s, hasher, args.tenant, args.product, f, note=args.note,
                                           check=not args.no_check)
            print(f"batch {batch_id}: {n} codes imported")
        elif args.cmd == "check":
            with db.session() as s:
                code = normalise(args.code)
                fits = [b.slug for b in Catalogue().brands(s, args.tenant) if b.format.fits(code)]
            print(f"fits brand format: {', '.join(fits)}" if fits else "fits no brand format (a typo?)")
    except (LookupError, CodeImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
