"""The console's own domain: users, sign-in, sessions, roles and the audit log. Plain code over
the database; the views and the API call it."""
