"""Herald ledger processor."""
