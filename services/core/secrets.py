"""Keys derived from ``settings.secret_key`` and encryption of secrets at rest.

One configured secret, one derived key per purpose (code HMACs, lottery draws, card passwords,
webhook signing secrets), so no two uses share key material. Plain text exists only in memory.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@lru_cache(maxsize=32)
def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"herald-v1",
                info=purpose.encode("utf-8")).derive(secret.encode("utf-8"))


@lru_cache(maxsize=32)
def _fernet(secret: str, purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, purpose)))


class SecretBox:
    """Seals and opens secrets (Fernet) under the key of one purpose; its repr shows nothing."""

    def __init__(self, secret: str, purpose: str = "herald/cards/fernet") -> None:
        self._fernet = _fernet(secret, purpose)
        self._purpose = purpose

    def seal(self, plain: str) -> bytes:
        return self._fernet.encrypt(plain.encode("utf-8"))

    def seal_text(self, plain: str) -> str:
        """As ``seal``, for a text column."""
        return self.seal(plain).decode("ascii")

    def open(self, token: bytes | str) -> str:
        raw = token.encode("ascii") if isinstance(token, str) else bytes(token)
        try:
            return self._fernet.decrypt(raw).decode("utf-8")
        except InvalidToken:
            raise ValueError(f"a {self._purpose} secret cannot be decrypted: "
                             "was HERALD_SECRET_KEY changed?") from None

    def __repr__(self) -> str:
        return "SecretBox(***)"
