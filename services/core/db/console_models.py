"""The console's own tables: users of the web program, their server-side sessions, and the
audit log of every change made through the console or the admin API."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow


class ConsoleUser(Base):
    """A person who signs in to the console. ``tenant_id`` is None only for platform
    operators. Passwords are stored as Argon2id hashes."""

    __tablename__ = "console_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True, index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # owner | operator | analyst | platform
    password_hash: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ConsoleSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is stored."""

    __tablename__ = "console_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who changed what, when, with the object's state before and after (secrets left out)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_at", "tenant_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(63), nullable=True)
    actor: Mapped[str] = mapped_column(String(254))  # a user's email, or "api-key:<prefix>"
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(128), default="")
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")


class ContactImportJob(Base):
    """A contact CSV import started from the console: its state and, once finished, its report
    (counts and up to 1,000 rejected rows with line and reason), so that the page shows the
    same outcome after a reload. The import itself is one transaction (contacts.import_csv)."""

    __tablename__ = "console_import_jobs"
    __table_args__ = (Index("ix_console_import_jobs_tenant", "tenant_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    actor: Mapped[str] = mapped_column(String(254))
    filename: Mapped[str] = mapped_column(String(255), default="")
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    list_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    atomic: Mapped[bool] = mapped_column(default=False)
    encoding: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    written: Mapped[bool] = mapped_column(default=False)
    rejects: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# -- code batches made from the console (issue 12, brand manager pages) ------------------------

class ConsoleCodeBatch(Base):
    """The console's side of a code batch: the generation job and its progress (codes stored so
    far, committed chunk by chunk), whether its printable file was downloaded (once, by whom),
    and its revocation. Batches made by the CLI get a row when they are revoked."""

    __tablename__ = "console_code_batches"
    __table_args__ = (Index("ix_console_code_batches_tenant", "tenant_id", "batch_id"),)
    batch_id: Mapped[int] = mapped_column(ForeignKey("code_batches.id", ondelete="CASCADE"),
                                          primary_key=True, autoincrement=False)
    tenant_id: Mapped[str] = mapped_column(String(63))
    actor: Mapped[str] = mapped_column(String(254))
    requested: Mapped[int] = mapped_column(Integer, default=0)
    generated: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    file_kind: Mapped[str | None] = mapped_column(String(8), nullable=True)  # csv | zip | None
    downloaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    downloaded_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    stats_at_revoke: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ConsoleCodeFilePart(Base):
    """A chunk of a batch's printable file (CSV rows, compressed and sealed with Fernet), stored
    in the same transaction as the chunk's code hashes and deleted when the file is downloaded."""

    __tablename__ = "console_code_file_parts"
    batch_id: Mapped[int] = mapped_column(ForeignKey("console_code_batches.batch_id", ondelete="CASCADE"),
                                          primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rows: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
