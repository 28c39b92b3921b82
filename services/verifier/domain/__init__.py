"""The verifier's domain: codes, verification, lockout, probes, lottery, members and clubs.
Nothing here knows about Kafka; ``Verifier.handle`` takes events and a transaction and returns
the events to produce."""

from .catalogue import Catalogue
from .codes import CodeFormat, CodeHasher, generate_batch, import_codes, normalise
from .verify import Verifier, derived_id, points_entry_id

__all__ = ["Catalogue", "CodeFormat", "CodeHasher", "Verifier", "derived_id", "generate_batch",
           "import_codes", "normalise", "points_entry_id"]
