"""Herald campaigns processor."""
