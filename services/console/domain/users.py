"""Console users, sign-in with lockout, and server-side sessions.

Passwords are Argon2id hashes (argon2-cffi's defaults). A session cookie carries 256 random
bits; the database keeps only their SHA-256, so a copy of the table signs nobody in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.core.db.console_models import ConsoleSession, ConsoleUser
from services.core.db.models import Tenant
from services.core.utc import aware as _aware

ROLES = ("owner", "operator", "analyst", "platform")
TENANT_ROLES = ("owner", "operator", "analyst")
LOCALES = ("en", "zh_Hans")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verified against when the email is unknown, so that a miss costs as long as a hit.
_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")


class UserError(ValueError):
    """A bad request about a user; ``field`` names the form field it concerns."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who is signed in, as the views and the API see it."""

    user_id: int
    email: str
    name: str
    role: str
    tenant_id: str | None
    locale: str

    @property
    def can_write(self) -> bool:
        return self.role in ("owner", "operator", "platform")

    @property
    def is_owner(self) -> bool:
        return self.role in ("owner", "platform")

    @property
    def actor(self) -> str:
        return self.email


def _now() -> datetime:
    return datetime.now(UTC)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError("password", f"The password needs at least {MIN_PASSWORD} characters.")


def create_user(s: Session, *, email: str, password: str, role: str, tenant_id: str | None,
                name: str = "", locale: str = "en") -> ConsoleUser:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise UserError("email", "Enter an email address such as clerk@example.com.")
    if role not in ROLES:
        raise UserError("role", f"Role must be one of {', '.join(ROLES)}.")
    if role == "platform" and tenant_id is not None:
        raise UserError("role", "A platform operator belongs to no tenant.")
    if role != "platform":
        if tenant_id is None or s.get(Tenant, tenant_id) is None:
            raise UserError("tenant", "The user's tenant does not exist.")
    if locale not in LOCALES:
        raise UserError("locale", f"Language must be one of {', '.join(LOCALES)}.")
    check_password_rules(password)
    if s.scalar(select(ConsoleUser.id).where(ConsoleUser.email == email)) is not None:
        raise UserError("email", "A user with this email exists already.")
    u = ConsoleUser(email=email, name=name.strip(), role=role, tenant_id=tenant_id,
                    password_hash=_hasher.hash(password), locale=locale, failed_logins=0,
                    active=True)
    s.add(u)
    s.flush()
    return u


class SignInRefused(Exception):
    """Wrong email or password, or a locked account; the message is safe to show."""

    def __init__(self, reason: str, locked_until: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locked_until = locked_until


def sign_in(s: Session, email: str, password: str, *, max_failures: int, lockout: timedelta,
            now: datetime | None = None) -> ConsoleUser:
    """The user, or SignInRefused. ``max_failures`` wrong passwords in a row lock the account
    for ``lockout``; while locked even the right password is refused."""
    now = now or _now()
    u = s.scalar(select(ConsoleUser).where(ConsoleUser.email == email.strip().lower()))
    if u is None or not u.active:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        raise SignInRefused("wrong_credentials")
    locked = _aware(u.locked_until)
    if locked is not None and locked > now:
        raise SignInRefused("locked", locked)
    try:
        _hasher.verify(u.password_hash, password)
    except (VerificationError, InvalidHashError):
        u.failed_logins = (u.failed_logins or 0) + 1
        if u.failed_logins >= max_failures:
            u.locked_until = now + lockout
            u.failed_logins = 0
            s.flush()
            raise SignInRefused("locked", u.locked_until) from None
        s.flush()
        raise SignInRefused("wrong_credentials") from None
    if _hasher.check_needs_rehash(u.password_hash):
        u.password_hash = _hasher.hash(password)
    u.failed_logins = 0
    u.locked_until = None
    u.last_login_at = now
    s.flush()
    return u


def set_password(s: Session, user: ConsoleUser, password: str) -> None:
    check_password_rules(password)
    user.password_hash = _hasher.hash(password)
    end_all_sessions(s, user.id)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start_session(s: Session, user: ConsoleUser, lifetime: timedelta) -> str:
    """A new session for the user; returns the cookie value (kept nowhere else)."""
    token = secrets.token_urlsafe(32)
    s.add(ConsoleSession(token_hash=_token_hash(token), user_id=user.id,
                         csrf_token=secrets.token_urlsafe(32), expires_at=_now() + lifetime))
    s.flush()
    return token


def resolve_session(s: Session, token: str | None) -> tuple[Principal, str] | None:
    """The signed-in principal and the session's CSRF token, or None."""
    if not token or len(token) > 100:
        return None
    row = s.get(ConsoleSession, _token_hash(token))
    if row is None or _aware(row.expires_at) <= _now():
        return None
    u = s.get(ConsoleUser, row.user_id)
    if u is None or not u.active:
        return None
    if u.tenant_id is not None:
        t = s.get(Tenant, u.tenant_id)
        if t is None or not t.active:
            return None
    return principal_of(u), row.csrf_token


def principal_of(u: ConsoleUser) -> Principal:
    return Principal(user_id=u.id, email=u.email, name=u.name or u.email, role=u.role,
                     tenant_id=u.tenant_id, locale=u.locale)


def end_session(s: Session, token: str | None) -> None:
    if token:
        s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token)))


def end_all_sessions(s: Session, user_id: int) -> int:
    """Sign the user out everywhere; returns how many sessions ended."""
    return s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id)).rowcount or 0


def prune_sessions(s: Session) -> None:
    s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < _now()))


def set_locale(s: Session, user_id: int, locale: str) -> None:
    if locale not in LOCALES:
        raise UserError("locale", f"Language must be one of {', '.join(LOCALES)}.")
    u = s.get(ConsoleUser, user_id)
    if u is not None:
        u.locale = locale


def users_of(s: Session, tenant_id: str) -> list[ConsoleUser]:
    return list(s.scalars(select(ConsoleUser).where(ConsoleUser.tenant_id == tenant_id)
                          .order_by(ConsoleUser.email)))


def count_users(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(ConsoleUser)) or 0
