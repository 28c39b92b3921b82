"""The inbox log: the pieces of one inbound text come on several topics in any order."""

import itertools

import pytest

from services.core import inbound_log, topics
from services.core.db.inbox_models import Conversation, InboundText

MID = "11111111-2222-4333-8444-555555555555"
INBOUND = {"message_id": MID, "from": "+8613800000001", "to": "10690001", "text": "JOIN club",
           "received_at": "2026-03-10T12:00:00Z"}
FORWARD = {**INBOUND, "tenant_id": "acme", "keyword": "JOIN"}
REPLY = {"message_id": "99999999-2222-4333-8444-555555555555", "in_reply_to": MID,
         "tenant_id": "acme", "source": "campaigns", "campaign_id": "c1",
         "attributes": {"kind": "on_demand"}}
PIECES = [(topics.SMS_INBOUND, INBOUND), (topics.CAMPAIGNS_INBOUND, FORWARD),
          (topics.SMS_OUTBOUND, REPLY)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_order_and_redelivery_give_the_same_row(sqlite_db, order):
    with sqlite_db.session() as s:
        for i in list(order) + list(order):  # each piece twice
            topic, event = PIECES[i]
            inbound_log.record(s, topic, [event], owner=lambda number: "")
    with sqlite_db.session() as s:
        row = s.get(InboundText, MID)
        assert (row.tenant_id, row.sender, row.text, row.keyword) == ("acme", "+8613800000001",
                                                                       "JOIN club", "JOIN")
        assert row.handled_by == "campaigns:on_demand" and row.campaign_id == "c1"
        conv = s.query(Conversation).one()
        assert (conv.tenant_id, conv.sender, conv.last_text) == ("acme", "+8613800000001", "JOIN club")


def test_a_code_query_labels_a_text_only_until_its_reply_comes(sqlite_db):
    reply = {**REPLY, "source": "verifier", "attributes": {"kind": "genuine"}, "campaign_id": None}
    with sqlite_db.session() as s:
        inbound_log.record(s, topics.SMS_INBOUND, [INBOUND], owner=lambda number: "acme")
        inbound_log.record(s, topics.SMS_OUTBOUND, [reply])
        inbound_log.record(s, topics.CODES_SUBMITTED, [{"inbound_message_id": MID, "tenant_id": "acme"}])
    with sqlite_db.session() as s:
        assert s.get(InboundText, MID).handled_by == "verifier:genuine"


def test_outbound_messages_that_answer_nothing_are_not_logged(sqlite_db):
    with sqlite_db.session() as s:
        n = inbound_log.record(s, topics.SMS_OUTBOUND, [{**REPLY, "in_reply_to": None}])
        assert n == 0 and s.query(InboundText).count() == 0
