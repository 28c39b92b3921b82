"""The member club and market research (issue 12, page 6), composed from two processors'
domains: a club is a campaigns subscription topic (members join with ``SUB <club>`` and leave
with ``UNSUB <club>`` by SMS, or are added from the console), and a research audience is the
verified buyers of a product (the verifier's records), turned into a campaigns contact list
that a survey or a club campaign is then sent to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.campaigns.domain import contacts, subscriptions
from services.campaigns.domain.campaigns import CampaignError
from services.core import tenancy
from services.core.db.campaigns_models import Subscriber, SubscriptionTopic
from services.core.db.models import Keyword
from services.core.db.schemes import CodeQuery, Product
from services.verifier.domain.admin import audience

CHUNK = 1000


@dataclass
class Club:
    topic: SubscriptionTopic
    members: int


def clubs(s: Session, tenant_id: str) -> list[Club]:
    counts = dict(s.execute(select(Subscriber.topic_id, func.count())
                            .where(Subscriber.tenant_id == tenant_id, Subscriber.active.is_(True))
                            .group_by(Subscriber.topic_id)).all())
    return [Club(t, int(counts.get(t.id, 0))) for t in subscriptions.topics(s, tenant_id)]


def club(s: Session, tenant_id: str, name: str) -> SubscriptionTopic:
    """LookupError when the tenant has no such club."""
    try:
        return subscriptions.get_topic(s, tenant_id, name)
    except CampaignError:
        raise LookupError(f"tenant {tenant_id} has no club {name}") from None


def members(s: Session, tenant_id: str, name: str, *, after: str | None = None, number: str | None = None,
            limit: int = 50) -> list[Subscriber]:
    """The club's current members by number, keyset-paged; ``number`` narrows to one."""
    topic = club(s, tenant_id, name)
    q = (select(Subscriber).where(Subscriber.topic_id == topic.id, Subscriber.active.is_(True))
         .order_by(Subscriber.msisdn).limit(limit))
    if after:
        q = q.where(Subscriber.msisdn > after)
    if number:
        q = q.where(Subscriber.msisdn == number)
    return list(s.scalars(q))


def join(s: Session, tenant_id: str, name: str, msisdn: str) -> bool:
    return subscriptions.subscribe(s, club(s, tenant_id, name), msisdn, datetime.now(UTC))


def leave(s: Session, tenant_id: str, name: str, msisdn: str) -> bool:
    return bool(subscriptions.unsubscribe(s, tenant_id, msisdn, club(s, tenant_id, name), datetime.now(UTC)))


def route_sub_unsub(s: Session, tenant_id: str) -> list[str]:
    """Make sure the tenant's SUB and UNSUB texts reach campaigns (where clubs live): a keyword
    rule for each that has none. Returns the words it added; a word the tenant's rules refuse
    (say a rule of its own for it) is left as it is."""
    added = []
    for word in ("SUB", "UNSUB"):
        have = select(Keyword.id).where(Keyword.tenant_id == tenant_id, Keyword.keyword == word)
        if s.scalar(have) is None:
            try:
                with s.begin_nested():
                    tenancy.add_keyword(s, tenant_id, word, "campaigns")
                added.append(word)
            except tenancy.RuleError:  # RuleRefused too
                continue
    return added


def products(s: Session, tenant_id: str) -> list[Product]:
    return list(s.scalars(select(Product).where(Product.tenant_id == tenant_id).order_by(Product.name)))


def invite_list(s: Session, tenant_id: str, list_name: str, *, product_id: int | None = None,
                club_name: str | None = None) -> tuple[int, int]:
    """A contact list of the chosen participants, the verified buyers of a product or a club's
    members, streamed in chunks (never the whole audience in memory). Returns (list id, number
    of participants). LookupError for another tenant's product or club."""
    if product_id is not None:
        product = s.get(Product, product_id)
        if product is None or product.tenant_id != tenant_id:
            raise LookupError(f"tenant {tenant_id} has no product {product_id}")
        base, column = audience(tenant_id, product_id), CodeQuery.msisdn
    elif club_name is not None:
        topic = club(s, tenant_id, club_name)
        column = Subscriber.msisdn
        base = select(column).where(Subscriber.topic_id == topic.id, Subscriber.active.is_(True)) \
            .order_by(column)
    else:
        raise ValueError("choose a product or a club")
    target = contacts.get_or_create_list(s, tenant_id, list_name)
    total, last = 0, ""
    while True:  # keyset chunks by number: the audience is never whole in memory
        chunk = list(s.scalars(base.where(column > last).limit(CHUNK)))
        if not chunk:
            return target.id, total
        total += _add(s, tenant_id, target.id, chunk)
        last = chunk[-1]


def _add(s: Session, tenant_id: str, list_id: int, numbers: list[str]) -> int:
    rows, _created, _updated = contacts.upsert(s, tenant_id, [contacts.ContactIn(msisdn=n) for n in numbers])
    contacts.add_members(s, list_id, [r.id for r in rows])
    return len(numbers)
