"""The send page's work: who a send goes to (pasted numbers and/or an uploaded CSV), the text each
gets (a template rendered with the contact's fields and the CSV's columns), what it will cost,
and the send itself through the send API's own code (services/core/sending.py), or, when
scheduled, as a one-off notification campaign (services/campaigns/domain/campaigns.py) to a
list made of the recipients, since Herald has no other store of future single sends."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns.domain import campaigns, contacts, templates
from services.core import sending
from services.core.carriers import Carrier
from services.core.db.models import Contact, SenderNumber, Tenant

from ..i18n import gettext as _

MAX_RECIPIENTS = sending.MAX_BATCH
SAMPLES = 3


@dataclass
class Composition:
    recipients: list[tuple[str, str]] = field(default_factory=list)  # (number, text) each
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # CSV columns by number
    bad_numbers: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    estimate: sending.Estimate = field(default_factory=sending.Estimate)

    @property
    def samples(self) -> list[tuple[str, str]]:
        return self.recipients[:SAMPLES]


def _csv_rows(raw: bytes, comp: Composition) -> list[tuple[str, dict[str, Any]]]:
    try:
        stream, _codec = contacts.open_text(io.BytesIO(raw))
        rows = list(contacts.read_rows(stream))
    except contacts.CsvError as exc:
        comp.errors["file"] = _("The file cannot be read: %(reason)s", reason=str(exc))
        return []
    out = []
    for line, row in rows:
        if isinstance(row, str):
            comp.bad_numbers.append(_("line %(line)s: %(reason)s", line=line, reason=row))
            continue
        raw_number = next((row[c] for c in contacts.MSISDN_COLUMNS if row.get(c)), "")
        number = sending.normalise_number(raw_number)
        if number is None:
            comp.bad_numbers.append(_("line %(line)s: %(value)s", line=line, value=raw_number))
            continue
        values = {k: v for k, v in row.items() if k not in contacts.MSISDN_COLUMNS and v != ""}
        out.append((number, values))
    return out


def tenant_senders(s: Session, tenant_id: str) -> list[str]:
    return list(s.scalars(select(SenderNumber.number).where(SenderNumber.tenant_id == tenant_id)
                          .order_by(SenderNumber.number)))


def compose(s: Session, tenant_id: str, numbers: str, csv_bytes: bytes | None, text: str,
            carriers: dict[str, Carrier]) -> Composition:
    """Everything the preview shows and the send uses; ``errors`` name the form field at fault."""
    comp = Composition()
    good, bad = sending.split_numbers(numbers)
    comp.bad_numbers += bad
    wanted: dict[str, dict[str, Any]] = {n: {} for n in good}
    if csv_bytes:
        for number, values in _csv_rows(csv_bytes, comp):
            wanted.setdefault(number, {}).update(values)
    if not wanted and "file" not in comp.errors:
        comp.errors["recipients"] = _("Add at least one number, one per line, in international "
                                      "format such as +8613812345678, or upload a CSV file.")
    if len(wanted) > MAX_RECIPIENTS:
        comp.errors["recipients"] = _(
            "At most %(max)s numbers per send; import a larger list as contacts and start a "
            "campaign.", max=MAX_RECIPIENTS)
        wanted = dict(list(wanted.items())[:MAX_RECIPIENTS])
    comp.values = wanted
    if not text.strip():
        comp.errors["text"] = _("Write the message text.")
        return comp
    if len(text) > sending.MAX_TEXT:
        comp.errors["text"] = _("The text has %(n)s characters; the limit is %(max)s.",
                                n=len(text), max=sending.MAX_TEXT)
        return comp
    try:
        tpl = templates.parse(text)
    except templates.TemplateError as exc:
        comp.errors["text"] = _("The placeholders cannot be read: %(reason)s", reason=str(exc))
        return comp
    known = {c.msisdn: c for c in s.scalars(select(Contact).where(
        Contact.tenant_id == tenant_id, Contact.msisdn.in_(list(wanted))))} if tpl.fields else {}
    missing: dict[str, list[str]] = {}
    for number, values in wanted.items():
        base = templates.contact_values(known[number]) if number in known else {
            "msisdn": number, "phone": number}
        try:
            comp.recipients.append((number, tpl.render({**base, **values})))
        except templates.MissingField as exc:
            missing.setdefault(exc.name, []).append(number)
    if missing:
        name, who = next(iter(missing.items()))
        comp.errors["text"] = _(
            "{%(field)s} has no value for %(n)s recipient(s), such as %(number)s. Add the column "
            "to your CSV, or give a fallback: {%(field)s|customer}.",
            field=name, n=len(who), number=who[0])
    tenant = s.get(Tenant, tenant_id)
    comp.estimate = sending.estimate(comp.recipients, carriers,
                                     list(tenant.carrier_preference or []) if tenant else None)
    return comp


def events(tenant_id: str, comp: Composition, *, send_id: str, sender: str | None,
           category: str, senders: set[str]) -> list[dict[str, Any]]:
    """The sms.outbound events of a send, built by the send API's parser. Their request ids come
    from the form's id, so a form submitted twice sends nothing twice."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", send_id):
        raise sending.BadRequest("the form has no valid send id; reload the page", "form")
    out = []
    for i, (number, text) in enumerate(comp.recipients):
        body: dict[str, Any] = {"to": number, "text": text, "category": category,
                                "request_id": f"console:{send_id}:{i}"}
        if sender:
            body["from"] = sender
        out.append(sending.parse_send(tenant_id, body, None, senders))
    return out


def schedule(s: Session, tenant_id: str, comp: Composition, *, text: str, at: datetime,
             sender: str | None, name: str) -> campaigns.Campaign:
    """A scheduled send: the recipients become contacts (their CSV columns as fields) on a list
    of their own, and a notification campaign sends the template to it at ``at``."""
    rows = [contacts.validate({"msisdn": n, **v}) for n, v in comp.values.items()]
    stored, _added, _updated = contacts.upsert(s, tenant_id, rows)
    lst = contacts.get_or_create_list(s, tenant_id, name[:100])
    contacts.add_members(s, lst.id, [c.id for c in stored])
    body: dict[str, Any] = {"name": name, "kind": "notification", "template": text,
                            "audience": {"list": lst.name}, "schedule_at": at.isoformat()}
    if sender:
        body["sender"] = sender
    return campaigns.create(s, tenant_id, body)
