"""The HTTP/JSON carrier connector (the protocol the carrier simulator speaks)."""
