"""Contact CSV imports started from the console, run in a worker thread of the console process.

The import is campaigns' own (services/campaigns/domain/contacts.py: the file is decoded through
first, then imported in one transaction, so it stores exactly what its report says or nothing).
This module adds what a page needs around it: a job row (console_import_jobs) holding the state
and the final report, so that a reload shows the same outcome; the live progress of a running
job (how far through the file the import has read), kept in memory by the process running it;
and the report of rejected rows as CSV whose cells a spreadsheet cannot evaluate.

Progress is not written to the database while the import runs: on SQLite the import's
transaction holds the only write lock until it commits. A job still "running" in the database
that no thread of this process runs was cut off by a restart; its transaction never committed,
so it is shown as failed with nothing imported."""

from __future__ import annotations

import io
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.campaigns.domain import contacts
from services.core import csv_export
from services.core.db import Database
from services.core.db.console_models import ContactImportJob

from . import audit

log = logging.getLogger("herald.console.imports")
CHECK_SHARE = 0.1  # the encoding pass reads the file once before the import reads it again
INTERRUPTED = "the console restarted during this import; nothing was imported; upload the file again"


@dataclass
class Progress:
    """How far a running job is: the phase and the upload's read position."""

    size: int
    file: IO[bytes]
    phase: str = "queued"  # queued | checking | importing | finishing
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fraction(self) -> float:
        if self.phase == "queued":
            return 0.0
        if self.phase == "finishing":
            return 0.99
        try:
            pos = self.file.tell()
        except (ValueError, OSError):  # closed between the phase check and tell()
            return 0.99
        part = min(pos / self.size, 1.0) if self.size else 1.0
        if self.phase == "checking":
            return CHECK_SHARE * part
        return CHECK_SHARE + (0.99 - CHECK_SHARE) * part


_running: dict[str, Progress] = {}


def start(db: Database, *, tenant_id: str, actor: str, upload: IO[bytes], filename: str,
          list_name: str | None, atomic: bool, encoding: str | None,
          run: Callable[[Callable[[], None]], Any] | None = None) -> str:
    """Record a job for ``upload`` (binary, seekable; this module closes it) and start it in a
    thread (or hand it to ``run``). Returns the job id."""
    upload.seek(0, io.SEEK_END)
    size = upload.tell()
    upload.seek(0)
    job_id = secrets.token_hex(16)
    _running[job_id] = Progress(size, upload)
    with db.session() as s:
        s.add(ContactImportJob(id=job_id, tenant_id=tenant_id, actor=actor, filename=filename[:255],
                               size_bytes=size, list_name=list_name, atomic=atomic,
                               encoding=encoding, status="queued", rejects=[]))
        audit.record(s, tenant_id=tenant_id, actor=actor, action="import_started",
                     object_type="contact_import", object_id=job_id,
                     after={"file": filename[:255], "bytes": size, "list": list_name,
                            "atomic": atomic})

    def work() -> None:
        try:
            execute(db, job_id, upload, tenant_id=tenant_id, list_name=list_name, atomic=atomic,
                    encoding=encoding)
        finally:
            _running.pop(job_id, None)
            upload.close()

    if run is not None:
        run(work)
    else:
        threading.Thread(target=work, name=f"import-{job_id[:8]}", daemon=True).start()
    return job_id


def execute(db: Database, job_id: str, upload: IO[bytes], *, tenant_id: str,
            list_name: str | None, atomic: bool, encoding: str | None) -> None:
    """Run the import and store its outcome on the job row (and in the audit log)."""
    progress = _running.get(job_id) or Progress(0, upload)
    with db.session() as s:
        job = s.get(ContactImportJob, job_id)
        job.status = "running"
        actor = job.actor
    outcome: dict[str, Any]
    try:
        progress.phase = "checking"
        stream, found = contacts.open_text(upload, encoding)
        progress.phase = "importing"
        try:
            report = contacts.import_csv(db.session, tenant_id, stream, list_name=list_name,
                                         atomic=atomic)
        finally:
            stream.detach()
        report.encoding = found
        progress.phase = "finishing"
        outcome = {"status": "done", "encoding": found, "rows": report.rows,
                   "created": report.created, "updated": report.updated,
                   "rejected": report.rejected, "duplicates": report.duplicates,
                   "written": report.written, "rejects": report.rejects, "error": None}
    except contacts.CsvError as exc:
        outcome = {"status": "failed", "error": str(exc), "written": False}
    except Exception as exc:  # a database error: the import's transaction rolled back
        log.exception("contact import %s failed", job_id)
        outcome = {"status": "failed", "written": False,
                   "error": f"the import stopped ({type(exc).__name__}); nothing was imported; "
                            "try again, and tell your administrator if it happens again"}
    with db.session() as s:
        job = s.get(ContactImportJob, job_id)
        for k, v in outcome.items():
            setattr(job, k, v)
        job.finished_at = datetime.now(UTC)
        audit.record(s, tenant_id=tenant_id, actor=actor, action="import",
                     object_type="contact_import", object_id=job_id,
                     after={k: v for k, v in outcome.items() if k != "rejects"})


def get(s: Session, tenant_id: str, job_id: str) -> ContactImportJob | None:
    """The tenant's job (None for another tenant's). A job left running by a process that is
    gone is settled as failed here."""
    # Whether this process runs it is looked at before the row is read: a job commits its
    # outcome before it leaves _running, so a row read after seeing it gone is final.
    live = job_id in _running
    job = s.scalar(select(ContactImportJob).where(ContactImportJob.id == job_id,
                                                  ContactImportJob.tenant_id == tenant_id))
    if job is not None and job.status in ("queued", "running") and not live:
        s.execute(update(ContactImportJob).where(
            ContactImportJob.id == job_id, ContactImportJob.status.in_(("queued", "running")))
            .values(status="failed", error=INTERRUPTED, written=False,
                    finished_at=datetime.now(UTC)))
        s.refresh(job)
    return job


def fraction(job: ContactImportJob) -> float:
    if job.status == "done":
        return 1.0
    p = _running.get(job.id)
    return p.fraction() if p is not None else 0.0


def phase(job: ContactImportJob) -> str:
    p = _running.get(job.id)
    return p.phase if p is not None else job.status


def recent(s: Session, tenant_id: str, limit: int = 10) -> list[ContactImportJob]:
    return list(s.scalars(select(ContactImportJob).where(ContactImportJob.tenant_id == tenant_id)
                          .order_by(ContactImportJob.created_at.desc()).limit(limit)))


def rejects_csv(job: ContactImportJob) -> str:
    """The rejected rows as CSV (line, reason), cells safe to open in a spreadsheet."""
    out = io.StringIO()
    w = csv_export.writer(out)
    w.writerow(["line", "reason"])
    for r in job.rejects or []:
        w.writerow([r.get("line"), r.get("reason")])
    return out.getvalue()
