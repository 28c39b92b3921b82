"""Stable event ids: the same name in the same namespace always gives the same id, so an event
emitted again (after a crash, a redelivery) is recognisably the one emitted before.

``stable_uuid`` is RFC 4122's version-5 UUID (SHA-1 of the namespace and the name), as
``str(uuid.uuid5(namespace, name))`` writes it, computed without building a ``uuid.UUID``:
the hot processors derive one or more per message, and the object cost three times the hash.
"""

from __future__ import annotations

import hashlib
import uuid


def stable_uuid(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, cheaper."""
    h = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
