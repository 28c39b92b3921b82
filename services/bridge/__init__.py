"""Herald bridge processor: ERPs over Kafka (tenant topics) and over HTTP (webhooks)."""
