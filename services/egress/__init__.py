"""Herald egress processor."""
