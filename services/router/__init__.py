"""Herald router processor."""
