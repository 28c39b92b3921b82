"""Campaigns made through the domain (as the API would) for the console's page tests."""

from services.campaigns.domain import campaigns


def make(db, tenant="acme", **body):
    body = {"kind": "notification", "name": "Bill reminder", "audience": "all",
            "template": "Hello", **body}
    with db.session() as s:
        return campaigns.create(s, tenant, body).id
