"""Herald ingress processor."""
