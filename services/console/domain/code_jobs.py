"""Code batches made from the console (and the ``herald batches`` command): generation as a
background job with its progress in the database, the printable file downloadable once, the
batch's statistics, and revocation.

Generation stores the codes chunk by chunk, each chunk one transaction holding its code hashes
(services/verifier/domain/codes.py: the brand's format, HMAC, bulk insert) and the same codes
in clear as a part of the printable file, compressed and sealed with Fernet. So the progress
the page polls is simply the number of codes committed, a million codes never sit in memory,
the verifier's writes interleave with the job's, and a code is never stored without its
printable copy (or the reverse). A chunk whose code collides with a stored one (about 1 in
10^5 per million against a million) is drawn again. A job that fails, or that a restart cut
off, removes what it stored: a batch is whole or empty.

The file leaves the database once: the download claims it with a conditional update and
deletes its parts in the same transaction, then the codes exist only as hashes. Up to
``ZIP_OVER`` codes it is one CSV; above, a ZIP of CSVs of ``PART_ROWS`` codes each (what a
spreadsheet or a card printer's software opens comfortably).

Revoking a batch deletes its codes (a revoked code then gets the "not one of ours" reply) and
keeps the statistics it had, so the batches page still shows them."""

from __future__ import annotations

import base64
import io
import logging
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core.db import Database
from services.core.db.console_models import ConsoleCodeBatch, ConsoleCodeFilePart
from services.core.db.schemes import Brand, Code, CodeBatch, Product, begin_write
from services.core.secrets import SecretBox
from services.verifier.domain.codes import CodeHasher, brand_format, printable, store_hashes

from . import audit

log = logging.getLogger("herald.console.codes")
MIN_CODES, MAX_CODES = 1, 1_000_000
CHUNK = 20_000  # codes per transaction (and per progress step)
ZIP_OVER = 100_000  # above this many codes the file is a ZIP of CSVs
PART_ROWS = 100_000  # codes per CSV inside the ZIP
HEADER = "code,printed,product,batch\n"
ATTEMPTS = 5
INTERRUPTED = "the console restarted while this batch was generated; nothing was kept; generate it again"
BOX_PURPOSE = "herald/console/code-files"


class CodeJobError(ValueError):
    """A refused request about a batch; ``field`` names the form field, ``msgid`` the text
    (views translate it with ``values``)."""

    def __init__(self, field: str, msgid: str, **values: Any) -> None:
        self.field, self.msgid, self.values = field, msgid, values
        self.message = msgid % values if values else msgid
        super().__init__(self.message)

    def translated(self, gettext) -> str:
        return gettext(self.msgid, **self.values)


_running: set[int] = set()
_lock = threading.Lock()


def _now() -> datetime:
    return datetime.now(UTC)


def _box(secret_key: str) -> SecretBox:
    return SecretBox(secret_key, BOX_PURPOSE)


def parse_count(raw: str | int) -> int:
    try:
        n = int(str(raw).replace(",", "").replace("_", "").strip())
    except ValueError:
        raise CodeJobError("count", "Enter how many codes to generate, as a whole number such as 10000.") \
            from None
    if not MIN_CODES <= n <= MAX_CODES:
        raise CodeJobError("count", "A batch has between %(min)s and %(max)s codes.", min=MIN_CODES,
                           max=f"{MAX_CODES:,}")
    return n


def _product(s: Session, tenant_id: str, product: str | int) -> Product:
    q = select(Product).where(Product.tenant_id == tenant_id)
    by_id = str(product).isdigit()
    q = q.where(Product.id == int(product)) if by_id else q.where(Product.slug == str(product))
    row = s.scalar(q)
    if row is None:
        raise CodeJobError("product", "Choose one of your products.")
    return row


# -- generation --------------------------------------------------------------------------------


def create(db: Database, *, tenant_id: str, actor: str, product: str | int, count: str | int,
           note: str = "") -> int:
    """Check the request and record the batch (queued). Returns its id; ``run`` generates it."""
    n = parse_count(count)
    note = (note or "").strip()
    if len(note) > 500:
        raise CodeJobError("note", "A note has at most %(limit)s characters.", limit=500)
    with db.session() as s:
        prod = _product(s, tenant_id, product)
        batch = CodeBatch(tenant_id=tenant_id, brand_id=prod.brand_id, product_id=prod.id, size=n,
                          source="generated", note=note)
        s.add(batch)
        s.flush()
        s.add(ConsoleCodeBatch(batch_id=batch.id, tenant_id=tenant_id, actor=actor, requested=n,
                               generated=0, status="queued", file_kind="zip" if n > ZIP_OVER else "csv"))
        audit.record(s, tenant_id=tenant_id, actor=actor, action="generate_started", object_type="code_batch",
                     object_id=str(batch.id), after={"product": prod.slug, "count": n, "note": note})
        with _lock:
            _running.add(batch.id)
        return batch.id


def start(db: Database, secret_key: str, *, tenant_id: str, actor: str, product: str | int,
          count: str | int, note: str = "", run: Callable[[Callable[[], None]], Any] | None = None) -> int:
    """``create`` and generate in a thread of this process (or hand the work to ``run``)."""
    batch_id = create(db, tenant_id=tenant_id, actor=actor, product=product, count=count, note=note)

    def work() -> None:
        execute(db, secret_key, batch_id)

    if run is not None:
        run(work)
    else:
        threading.Thread(target=work, name=f"codes-{batch_id}", daemon=True).start()
    return batch_id


def _csv_rows(codes: list[str], product_slug: str, batch_id: int) -> bytes:
    return "".join(f"{c},{printable(c)},{product_slug},{batch_id}\n" for c in codes).encode("ascii")


def execute(db: Database, secret_key: str, batch_id: int, chunk: int | None = None,
            on_chunk: Callable[[int, int], None] | None = None) -> None:
    """Generate the batch's codes chunk by chunk; the outcome goes on its row and in the audit log."""
    chunk = chunk or CHUNK
    with _lock:
        _running.add(batch_id)
    hasher, box = CodeHasher(secret_key), _box(secret_key)
    try:
        try:
            with db.session() as s:
                rec = s.get(ConsoleCodeBatch, batch_id)
                batch = s.get(CodeBatch, batch_id)
                product = s.get(Product, batch.product_id)
                fmt = brand_format(s.get(Brand, batch.brand_id))
                rec.status = "running"
                tenant_id, actor, total, slug = rec.tenant_id, rec.actor, rec.requested, product.slug
                done, seq = rec.generated, 0
            while done < total:
                n = min(chunk, total - done)
                for attempt in range(ATTEMPTS):
                    try:
                        with db.session() as s:
                            begin_write(s)
                            codes = fmt.generate(n)
                            store_hashes(s, batch_id, sorted(hasher.many(tenant_id, codes)))
                            packed = zlib.compress(_csv_rows(codes, slug, batch_id), 6)
                            data = box.seal(base64.b64encode(packed).decode("ascii"))
                            s.add(ConsoleCodeFilePart(batch_id=batch_id, seq=seq, rows=n, data=data))
                            s.execute(update(ConsoleCodeBatch).where(ConsoleCodeBatch.batch_id == batch_id)
                                      .values(generated=ConsoleCodeBatch.generated + n))
                        break
                    except IntegrityError:
                        if attempt == ATTEMPTS - 1:
                            raise
                done += n
                seq += 1
                if on_chunk is not None:
                    on_chunk(done, total)
            with db.session() as s:
                rec = s.get(ConsoleCodeBatch, batch_id)
                rec.status, rec.finished_at = "done", _now()
                audit.record(s, tenant_id=tenant_id, actor=actor, action="generate", object_type="code_batch",
                             object_id=str(batch_id), after={"product": slug, "codes": done})
        except Exception as exc:  # a database error: undo the chunks that were stored
            log.exception("code batch %s failed", batch_id)
            _fail(db, batch_id, f"generation stopped ({type(exc).__name__}); nothing was kept; try again")
    finally:
        with _lock:
            _running.discard(batch_id)


def _fail(db: Database, batch_id: int, error: str) -> None:
    with db.session() as s:
        begin_write(s)
        s.execute(delete(Code).where(Code.batch_id == batch_id))
        s.execute(delete(ConsoleCodeFilePart).where(ConsoleCodeFilePart.batch_id == batch_id))
        rec = s.get(ConsoleCodeBatch, batch_id)
        batch = s.get(CodeBatch, batch_id)
        rec.status, rec.error, rec.generated, rec.finished_at = "failed", error, 0, _now()
        rec.file_kind = None
        batch.size = 0
        audit.record(s, tenant_id=rec.tenant_id, actor=rec.actor, action="generate_failed",
                     object_type="code_batch", object_id=str(batch_id), after={"error": error})


def settle_interrupted(db: Database, batch_id: int) -> None:
    """A batch left queued or running by a process that is gone: undo it (see the module)."""
    with _lock:
        if batch_id in _running:
            return
    _fail(db, batch_id, INTERRUPTED)


# -- reading -----------------------------------------------------------------------------------


@dataclass
class BatchRow:
    batch: CodeBatch
    product: Product
    rec: ConsoleCodeBatch | None

    @property
    def status(self) -> str:
        if self.rec is None:
            return "done"
        if self.rec.revoked_at is not None:
            return "revoked"
        return self.rec.status

    @property
    def fraction(self) -> float:
        if self.rec is None or not self.rec.requested:
            return 1.0
        return min(1.0, self.rec.generated / self.rec.requested)

    @property
    def printed(self) -> int:
        return self.rec.generated if self.rec is not None else self.batch.size

    @property
    def file_ready(self) -> bool:
        r = self.rec
        return (r is not None and r.status == "done" and r.downloaded_at is None and r.revoked_at is None
                and r.file_kind is not None)

    @property
    def interrupted(self) -> bool:
        with _lock:
            return (self.rec is not None and self.rec.status in ("queued", "running")
                    and self.batch.id not in _running)


def batches(s: Session, tenant_id: str, *, product_id: int | None = None, before_id: int | None = None,
            limit: int = 50) -> list[BatchRow]:
    """The tenant's batches, newest first, keyset-paged by id."""
    q = (select(CodeBatch, Product, ConsoleCodeBatch).join(Product, Product.id == CodeBatch.product_id)
         .outerjoin(ConsoleCodeBatch, ConsoleCodeBatch.batch_id == CodeBatch.id)
         .where(CodeBatch.tenant_id == tenant_id).order_by(CodeBatch.id.desc()).limit(limit))
    if product_id is not None:
        q = q.where(CodeBatch.product_id == product_id)
    if before_id is not None:
        q = q.where(CodeBatch.id < before_id)
    return [BatchRow(b, p, r) for b, p, r in s.execute(q).all()]


def get(s: Session, tenant_id: str, batch_id: int) -> BatchRow | None:
    """The tenant's batch (None for another tenant's or none)."""
    row = s.execute(select(CodeBatch, Product, ConsoleCodeBatch)
                    .join(Product, Product.id == CodeBatch.product_id)
                    .outerjoin(ConsoleCodeBatch, ConsoleCodeBatch.batch_id == CodeBatch.id)
                    .where(CodeBatch.id == batch_id, CodeBatch.tenant_id == tenant_id)).first()
    return BatchRow(*row) if row else None


def stats(s: Session, row: BatchRow) -> dict[str, int]:
    """Printed, verified at least once, and repeat queries (every query of a code after its
    first); a revoked batch shows what it had when it was revoked."""
    if row.rec is not None and row.rec.stats_at_revoke is not None:
        return dict(row.rec.stats_at_revoke)
    verified, repeats = s.execute(
        select(func.count(Code.id).filter(Code.query_count > 0),
               func.coalesce(func.sum(Code.query_count - 1).filter(Code.query_count > 1), 0))
        .where(Code.batch_id == row.batch.id)).one()
    return {"printed": row.printed, "verified": int(verified or 0), "repeats": int(repeats or 0)}


# -- the file, once ----------------------------------------------------------------------------


@dataclass
class CodeFile:
    filename: str
    content_type: str
    file: IO[bytes]
    size: int


def _parts(s: Session, box: SecretBox, batch_id: int) -> Iterator[tuple[int, bytes]]:
    seqs = s.scalars(select(ConsoleCodeFilePart.seq).where(ConsoleCodeFilePart.batch_id == batch_id)
                     .order_by(ConsoleCodeFilePart.seq)).all()
    for seq in seqs:  # one part in memory at a time
        part = s.get(ConsoleCodeFilePart, (batch_id, seq))
        yield part.rows, zlib.decompress(base64.b64decode(box.open(part.data)))
        s.expunge(part)


def download(s: Session, secret_key: str, tenant_id: str, batch_id: int, actor: str) -> CodeFile:
    """Claim the batch's file for ``actor`` and build it; its parts are deleted in the same
    transaction, so a second download finds nothing (CodeJobError naming who took it, when)."""
    begin_write(s)
    row = get(s, tenant_id, batch_id)
    if row is None:
        raise LookupError(batch_id)
    rec = row.rec
    if rec is None:
        raise CodeJobError("file", "This batch was made outside the console; its codes were written to "
                                   "a file when it was made, and the console never held them.")
    if rec.revoked_at is not None:
        raise CodeJobError("file", "This batch is revoked; its file cannot be downloaded.")
    if rec.downloaded_at is not None:
        raise CodeJobError("file", "The file of this batch was already downloaded by %(who)s; it can be "
                                   "downloaded only once, because the codes are kept only as hashes "
                                   "after that.", who=rec.downloaded_by)
    if rec.status != "done":
        raise CodeJobError("file", "The batch is not ready yet; wait until all its codes are generated.")
    claimed = s.execute(update(ConsoleCodeBatch)
                        .where(ConsoleCodeBatch.batch_id == batch_id,
                               ConsoleCodeBatch.downloaded_at.is_(None))
                        .values(downloaded_at=_now(), downloaded_by=actor)).rowcount
    if claimed != 1:
        raise CodeJobError("file", "The file of this batch was already downloaded; it can be downloaded "
                                   "only once.")
    box = _box(secret_key)
    out = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    base = f"codes-{row.product.slug}-batch-{batch_id}"
    if rec.file_kind == "zip":
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            entry, rows_in_entry, number = None, 0, 0
            for rows, data in _parts(s, box, batch_id):
                if entry is None or rows_in_entry >= PART_ROWS:
                    if entry is not None:
                        entry.close()
                    number += 1
                    entry = zf.open(f"{base}-part-{number:03d}.csv", "w", force_zip64=True)
                    entry.write(HEADER.encode("ascii"))
                    rows_in_entry = 0
                entry.write(data)
                rows_in_entry += rows
            if entry is not None:
                entry.close()
        filename, ctype = base + ".zip", "application/zip"
    else:
        out.write(HEADER.encode("ascii"))
        for _rows, data in _parts(s, box, batch_id):
            out.write(data)
        filename, ctype = base + ".csv", "text/csv; charset=us-ascii"
    s.execute(delete(ConsoleCodeFilePart).where(ConsoleCodeFilePart.batch_id == batch_id))
    audit.record(s, tenant_id=tenant_id, actor=actor, action="download", object_type="code_batch",
                 object_id=str(batch_id), after={"file": filename, "codes": rec.generated})
    size = out.tell()
    out.seek(0)
    return CodeFile(filename, ctype, out, size)


# -- revocation --------------------------------------------------------------------------------


def revoke(s: Session, tenant_id: str, batch_id: int, actor: str) -> bool:
    """Revoke the batch: its codes are deleted (they read as not ours from now on) and its
    unread file with them. Returns False when it was revoked already."""
    begin_write(s)
    row = get(s, tenant_id, batch_id)
    if row is None:
        raise LookupError(batch_id)
    if row.status in ("queued", "running") and not row.interrupted:
        raise CodeJobError("batch", "The batch is still being generated; revoke it once it is finished.")
    status = row.status
    if status == "revoked":
        return False
    snapshot = stats(s, row)
    rec = row.rec
    if rec is None:
        rec = ConsoleCodeBatch(batch_id=batch_id, tenant_id=tenant_id, actor=actor, requested=row.batch.size,
                               generated=row.batch.size, status="done", file_kind=None)
        s.add(rec)
    s.execute(delete(Code).where(Code.batch_id == batch_id))
    s.execute(delete(ConsoleCodeFilePart).where(ConsoleCodeFilePart.batch_id == batch_id))
    rec.revoked_at, rec.revoked_by, rec.stats_at_revoke = _now(), actor, snapshot
    s.flush()
    audit.record(s, tenant_id=tenant_id, actor=actor, action="revoke", object_type="code_batch",
                 object_id=str(batch_id), before={"status": status, **snapshot},
                 after={"status": "revoked"})
    return True


def codes_in_file(data: bytes) -> list[str]:
    """The codes in a downloaded CSV (or in every CSV of a downloaded ZIP)."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            text = "".join(zf.read(n).decode("ascii") for n in sorted(zf.namelist()))
    else:
        text = data.decode("ascii")
    return [line.split(",")[0] for line in text.splitlines() if line and not line.startswith("code,")]
