"""The campaigns processor's domain: audiences, campaign kinds, expansion, conversations.

Nothing here knows Kafka: functions take a database session and the clock, and return the
sms.outbound events to produce (``services.core.processor.Out``).
"""
