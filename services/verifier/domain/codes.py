"""Anti-counterfeit codes: their format (alphabet, length, check symbol), generation from a
cryptographic source, keyed hashing, and bulk storage of batches.

A code is ``length`` random symbols of the alphabet followed by one check symbol (Luhn mod N
over the alphabet). The check symbol catches every single mistyped symbol and most swaps of two
neighbours, so "please check the code" is told apart from "this code is not ours" without
touching the database.
"""

from __future__ import annotations

import csv
import hmac
import io
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core import csv_export
from services.core.db.schemes import (
    DEFAULT_ALPHABET,
    Brand,
    Code,
    CodeBatch,
    Product,
)
from services.core.secrets import derive_key

CHUNK = 50_000  # rows per executemany / COPY flush


class CodeFormatError(ValueError):
    pass


@dataclass(frozen=True)
class CodeFormat:
    alphabet: str = DEFAULT_ALPHABET
    length: int = 11  # random symbols; the check symbol comes on top
    _index: dict = field(init=False, repr=False, compare=False)
    _double: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        a = self.alphabet
        if len(set(a)) != len(a) or not a or not all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for c in a):
            raise CodeFormatError("alphabet must be distinct upper-case letters and digits")
        if not 10 <= len(a) <= 36:
            raise CodeFormatError("alphabet must have 10 to 36 symbols")
        if not 3 <= self.length <= 31:  # codes.submitted carries 4 to 32 symbols
            raise CodeFormatError("length must be 3 to 31 symbols (plus the check symbol)")
        n = len(a)
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(a)})
        object.__setattr__(self, "_double", {c: (2 * i) // n + (2 * i) % n for i, c in enumerate(a)})

    @property
    def size(self) -> int:
        return self.length + 1

    @property
    def bits(self) -> float:
        import math
        return self.length * math.log2(len(self.alphabet))

    def _sum(self, reversed_symbols: str, double_first: bool) -> int:
        # Luhn mod N: from the right, every other symbol's value is doubled and folded back.
        dbl, one = self._double, self._index
        first, second = (dbl, one) if double_first else (one, dbl)
        return (sum(map(first.__getitem__, reversed_symbols[0::2]))
                + sum(map(second.__getitem__, reversed_symbols[1::2])))

    def check_symbol(self, body: str) -> str:
        n = len(self.alphabet)
        return self.alphabet[(n - self._sum(body[::-1], True) % n) % n]

    def make(self, body: str) -> str:
        return body + self.check_symbol(body)

    def has_shape(self, code: str) -> bool:
        """Right length and only alphabet symbols (the check symbol not checked)."""
        return len(code) == self.size and all(c in self._index for c in code)

    def fits(self, code: str) -> bool:
        """Right length, only alphabet symbols, and the check symbol agrees."""
        if len(code) != self.size or any(c not in self._index for c in code):
            return False
        return self._sum(code[::-1], False) % len(self.alphabet) == 0

    def random_bodies(self, count: int) -> list[str]:
        """``count`` random bodies from ``secrets``: bytes outside the largest multiple of the
        alphabet size are dropped so every symbol is equally likely."""
        n, length = len(self.alphabet), self.length
        limit = 256 - 256 % n
        table = bytes(ord(self.alphabet[b % n]) for b in range(256))
        drop = bytes(range(limit, 256))
        need = count * length
        buf = bytearray()
        while len(buf) < need:
            missing = need - len(buf)
            buf += secrets.token_bytes(missing + missing // 4 + 16).translate(table, drop)
        text = buf[:need].decode("ascii")
        return [text[i:i + length] for i in range(0, need, length)]

    def generate(self, count: int) -> list[str]:
        """``count`` distinct codes, check symbol included."""
        codes: dict[str, None] = {}
        while len(codes) < count:
            for body in self.random_bodies(count - len(codes)):
                codes[self.make(body)] = None
        return list(codes)


def brand_format(brand: Brand) -> CodeFormat:
    return CodeFormat(brand.code_alphabet, brand.code_length)


def normalise(code: str) -> str:
    """Upper case, separators dropped: what the card shows as ``K7QM-4XPD-2H9A`` is ``K7QM4XPD2H9A``."""
    return "".join(c for c in code.upper() if c.isascii() and c.isalnum())


def printable(code: str, group: int = 4) -> str:
    return "-".join([code[i:i + group] for i in range(0, len(code), group)])


class CodeHasher:
    """HMAC-SHA256 of tenant and normalised code under a key derived from the secret key. The
    tenant is part of the message so two tenants' identical codes stay apart."""

    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, "herald/codes/hmac")

    def __call__(self, tenant_id: str, code: str) -> bytes:
        return hmac.digest(self._key, f"{tenant_id}\x1f{code}".encode("ascii"), "sha256")

    def many(self, tenant_id: str, codes: Iterable[str]) -> Iterator[bytes]:
        key, prefix = self._key, f"{tenant_id}\x1f".encode("ascii")
        digest = hmac.digest
        for c in codes:
            yield digest(key, prefix + c.encode("ascii"), "sha256")

    def __repr__(self) -> str:
        return "CodeHasher(***)"


# -- batches ---------------------------------------------------------------------------------------

def find_product(s: Session, tenant_id: str, product_slug: str) -> tuple[Product, Brand]:
    product = s.scalar(select(Product).where(Product.tenant_id == tenant_id, Product.slug == product_slug))
    if product is None:
        raise LookupError(f"tenant {tenant_id} has no product {product_slug!r}")
    return product, s.get(Brand, product.brand_id)


def store_hashes(s: Session, batch_id: int, hashes: Iterable[bytes]) -> int:
    """Bulk insert: COPY on PostgreSQL, executemany in chunks on SQLite, straight on the
    session's DBAPI connection (inside its transaction). Raises sqlalchemy's IntegrityError if
    a hash exists already; the caller decides whether to draw again or to refuse."""
    conn = s.connection()
    raw = conn.connection.dbapi_connection
    try:
        if conn.dialect.name == "postgresql":
            return _copy_hashes(raw, batch_id, hashes)
        return _insert_hashes(raw, batch_id, hashes)
    except conn.dialect.loaded_dbapi.IntegrityError as exc:
        raise IntegrityError("INSERT INTO codes", None, exc) from exc


def _copy_hashes(raw, batch_id: int, hashes: Iterable[bytes]) -> int:
    n = 0
    with raw.cursor() as cur, cur.copy("COPY codes (code_hash, batch_id, query_count) FROM STDIN") as cp:
        for h in hashes:
            cp.write_row((h, batch_id, 0))
            n += 1
    return n


def _insert_hashes(raw, batch_id: int, hashes: Iterable[bytes]) -> int:
    sql = "INSERT INTO codes (code_hash, batch_id, query_count) VALUES (?, ?, 0)"
    n = 0
    cur = raw.cursor()
    try:
        chunk: list[tuple[bytes, int]] = []
        for h in hashes:
            chunk.append((h, batch_id))
            if len(chunk) >= CHUNK:
                cur.executemany(sql, chunk)
                n += len(chunk)
                chunk = []
        if chunk:
            cur.executemany(sql, chunk)
            n += len(chunk)
    finally:
        cur.close()
    return n


def _new_batch(s: Session, tenant_id: str, product: Product, size: int, source: str, note: str) -> CodeBatch:
    batch = CodeBatch(tenant_id=tenant_id, brand_id=product.brand_id, product_id=product.id, size=size,
                      source=source, note=note)
    s.add(batch)
    s.flush()
    return batch


def write_csv(out: io.TextIOBase, codes: Iterable[str], product_slug: str, batch_id: int) -> None:
    w = csv_export.writer(out, lineterminator="\n")
    w.writerow(["code", "printed", "product", "batch"])
    w.writerows((c, printable(c), product_slug, batch_id) for c in codes)


def create_batch(s: Session, hasher: CodeHasher, tenant_id: str, product_slug: str, count: int,
                 note: str = "") -> tuple[int, list[str]]:
    """Generate ``count`` codes in the product's brand format and store their hashes in the
    session's transaction. Returns (batch id, the codes in clear: the only copy)."""
    product, brand = find_product(s, tenant_id, product_slug)
    codes = brand_format(brand).generate(count)
    batch = _new_batch(s, tenant_id, product, count, "generated", note)
    # In key order the unique index grows at its end instead of at a million random places:
    # about 40% less time for a million codes on SQLite.
    store_hashes(s, batch.id, sorted(hasher.many(tenant_id, codes)))
    return batch.id, codes


def generate_batch(db_sessions, hasher: CodeHasher, tenant_id: str, product_slug: str, count: int,
                   out_path: str | Path, note: str = "", attempts: int = 3) -> tuple[int, int]:
    """Generate ``count`` codes, store their hashes and write them, once, to a CSV for the card
    printer. The CSV appears only after the hashes are committed. A code that collides with an
    existing one (about 1 in 10^5 for a million 55-bit codes against a million others) makes
    the whole batch be drawn again, so the printer never gets an unusable code.

    ``db_sessions`` is a callable returning a transaction context (``Database.session``).
    Returns (batch id, codes stored)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".partial")
    for attempt in range(attempts):
        try:
            with db_sessions() as s:
                batch_id, codes = create_batch(s, hasher, tenant_id, product_slug, count, note)
                with open(tmp, "w", encoding="ascii", newline="") as f:
                    write_csv(f, codes, product_slug, batch_id)
                    f.flush()
                    os.fsync(f.fileno())
                stored = len(codes)
        except IntegrityError:
            tmp.unlink(missing_ok=True)
            if attempt == attempts - 1:
                raise
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, out_path)
        return batch_id, stored
    raise AssertionError("unreachable")


class CodeImportError(ValueError):
    """A code file that cannot be imported as it is, with the line that shows why."""


def read_codes(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Codes from a CSV (first column, header optional) or a plain list, with line numbers."""
    for lineno, row in enumerate(csv.reader(lines), start=1):
        if not row or not row[0].strip() or row[0].strip().lower() == "code":
            continue
        yield lineno, normalise(row[0])


def import_codes(s: Session, hasher: CodeHasher, tenant_id: str, product_slug: str,
                 lines: Iterable[str], note: str = "", check: bool = True) -> tuple[int, int]:
    """Import existing codes (printed elsewhere) for a product. Every code must fit the brand's
    format when ``check`` is on (codes without our check symbol need ``check=False`` and a brand
    format that matches them); duplicates, in the file or against stored codes, are refused
    with the line. Returns (batch id, codes stored)."""
    product, brand = find_product(s, tenant_id, product_slug)
    fmt = brand_format(brand)
    seen: dict[str, int] = {}
    for lineno, code in read_codes(lines):
        if check and not fmt.fits(code):
            raise CodeImportError(f"line {lineno}: {code[:4]}... does not fit the brand's code format "
                               f"({fmt.size} symbols of {fmt.alphabet} with a check symbol)")
        if not check and not 4 <= len(code) <= 32:
            raise CodeImportError(f"line {lineno}: a code has 4 to 32 letters and digits")
        if code in seen:
            raise CodeImportError(f"line {lineno}: duplicate of line {seen[code]}")
        seen[code] = lineno
    if not seen:
        raise CodeImportError("no codes in the file")
    batch = _new_batch(s, tenant_id, product, len(seen), "imported", note)
    try:
        with s.begin_nested():
            stored = store_hashes(s, batch.id, sorted(hasher.many(tenant_id, seen)))
    except IntegrityError:
        hashes = dict(zip(hasher.many(tenant_id, seen), seen.values(), strict=True))
        keys, taken = list(hashes), None
        for i in range(0, len(keys), 5000):
            taken = s.scalars(select(Code.code_hash).where(Code.code_hash.in_(keys[i:i + 5000]))).first()
            if taken is not None:
                break
        where = f"line {hashes[bytes(taken)]}" if taken is not None else "a line"
        raise CodeImportError(f"{where}: that code is already stored (in this or another batch)") from None
    return batch.id, stored
