"""Twilio-style carriers: form-encoded submission and callbacks, X-Twilio-Signature."""
