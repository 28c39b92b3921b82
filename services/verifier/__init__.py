"""Herald verifier processor."""
