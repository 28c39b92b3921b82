"""Inquiry: ``<KEYWORD> <argument>`` ("ORDER 12345", or "BAL" alone, which asks about the
sender's own number) answered from a table the tenant uploaded, or by the tenant's own HTTP
endpoint.

The endpoint gets ``POST {"tenant_id", "keyword", "argument", "from", "message_id"}`` and answers
``{"reply": "..."}`` (or a plain-text body). Timeouts, connection errors, 429 and 5xx are retried
with a short backoff; when every try fails, or the answer is unusable, the contact gets the
campaign's polite fallback instead of silence.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import re
from dataclasses import dataclass
from typing import IO, Any

import httpx
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import Campaign, InquiryRow, TenantEndpoint

from . import templates
from .campaigns import CampaignError
from .contacts import ContactError, CsvError, field_name, open_text

log = logging.getLogger(__name__)

FALLBACK = "Sorry, we cannot answer that right now. Please try again later."
NOT_FOUND = "Sorry, we found nothing for {argument}."
REPLY_MAX = 1600
KEY_MAX = 128
CHUNK = 1000


@dataclass(frozen=True)
class EndpointCall:
    url: str
    timeout_s: float
    retries: int
    payload: dict[str, Any]


def lookup_key(argument: str, msisdn: str) -> str:
    return (argument.strip() or msisdn).upper()[:KEY_MAX]


def answer_from_table(s: Session, c: Campaign, argument: str, msisdn: str) -> str:
    key = lookup_key(argument, msisdn)
    row = s.scalar(select(InquiryRow).where(InquiryRow.campaign_id == c.id, InquiryRow.key == key))
    config = c.config or {}
    values = {"argument": argument.strip() or msisdn, "key": key, "msisdn": msisdn}
    if row is None:
        try:
            return templates.parse(config.get("not_found") or NOT_FOUND).render(values)[:REPLY_MAX]
        except (templates.MissingField, templates.TemplateError):
            return NOT_FOUND.format(argument=values["argument"])
    try:
        return templates.parse(config["reply"]).render({**row.data, **values})[:REPLY_MAX]
    except (templates.MissingField, KeyError, templates.TemplateError):
        return config.get("fallback") or FALLBACK


def load_table(s: Session, c: Campaign, stream: IO[str]) -> dict[str, Any]:
    """Replace the campaign's table with a CSV whose first column is the lookup key. The reply
    template's fields must be columns; a bad file changes nothing (one transaction)."""
    if c.kind != "inquiry" or (c.config or {}).get("source", "table") != "table":
        raise CampaignError(f"campaign {c.id} is not an inquiry answered from a table", 409)
    reader = csv.reader(stream)
    try:
        header = next(reader)
        # The key column may be named anything (订单号 is fine); the others are template fields.
        first = header[0].lstrip("\ufeff").strip() if header else ""
        columns = [first or "key", *(field_name(h) for h in header[1:])]
    except StopIteration:
        raise CampaignError("the table is empty; expected a header row") from None
    except (csv.Error, ContactError) as exc:
        raise CampaignError(f"header row: {exc}; the reply template names these columns, so "
                            "rename them in the first row (the key column may keep any name)") from None
    if len(set(columns)) != len(columns) or len(columns) < 2:
        raise CampaignError("header row: need a key column and at least one value column, "
                            "each named once")
    tpl = templates.parse(c.config["reply"])
    missing = tpl.fields - set(columns[1:]) - {"argument", "key", "msisdn"}
    if missing:
        raise CampaignError(f"the reply template uses {', '.join(sorted(missing))}, which the "
                            f"table has no column for (columns: {', '.join(columns)})")
    s.execute(delete(InquiryRow).where(InquiryRow.campaign_id == c.id))
    seen: set[str] = set()
    rejects: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    rows = 0
    for values in reader:
        if not values or all(not v.strip() for v in values):
            continue
        rows += 1
        line = reader.line_num
        if len(values) != len(columns):
            rejects.append({"line": line, "reason": f"expected {len(columns)} columns, found "
                            f"{len(values)}"})
            continue
        key = values[0].strip().upper()
        if not key or len(key) > KEY_MAX:
            rejects.append({"line": line, "reason": f"key must be 1 to {KEY_MAX} characters"})
            continue
        if key in seen:
            rejects.append({"line": line, "reason": f"key {key} appears twice"})
            continue
        seen.add(key)
        batch.append({"campaign_id": c.id, "key": key,
                      "data": dict(zip(columns[1:], (v.strip() for v in values[1:]), strict=True))})
        if len(batch) >= CHUNK:
            s.execute(insert(InquiryRow), batch)
            batch = []
    if batch:
        s.execute(insert(InquiryRow), batch)
    return {"rows": rows, "loaded": len(seen), "rejected": len(rejects), "rejected_rows": rejects[:1000]}


def load_table_upload(s: Session, c: Campaign, raw: IO[bytes], encoding: str | None = None) -> dict[str, Any]:
    """``load_table`` for an uploaded file (binary, seekable): UTF-8 or GB18030 detected, or the
    ``encoding`` given; a file that does not decode changes nothing and says what to do."""
    try:
        stream, found = open_text(raw, encoding)
    except CsvError as exc:
        raise CampaignError(str(exc)) from None
    try:
        return {**load_table(s, c, stream), "encoding": found}
    finally:
        stream.detach()


def endpoint_call(s: Session, c: Campaign, event: dict[str, Any], keyword: str,
                  argument: str) -> EndpointCall:
    ep = s.scalar(select(TenantEndpoint).where(TenantEndpoint.tenant_id == c.tenant_id,
                                               TenantEndpoint.name == str((c.config or {}).get("endpoint"))))
    if ep is None:
        raise LookupError(f"endpoint {(c.config or {}).get('endpoint')!r} is gone")
    return EndpointCall(ep.url, ep.timeout_s, ep.retries, {
        "tenant_id": c.tenant_id, "keyword": keyword, "argument": argument.strip(),
        "from": event["from"], "message_id": event["message_id"]})


async def ask(client: httpx.AsyncClient, call: EndpointCall, backoff_s: float = 0.2) -> str | None:
    """The endpoint's reply, or None when it cannot give one (the caller sends the fallback)."""
    for attempt in range(call.retries + 1):
        if attempt:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            r = await client.post(call.url, json=call.payload, timeout=call.timeout_s)
        except httpx.HTTPError as exc:
            log.warning("inquiry endpoint %s: %s (try %d)", call.url, type(exc).__name__, attempt + 1)
            continue
        if r.status_code == 429 or r.status_code >= 500:
            log.warning("inquiry endpoint %s: HTTP %d (try %d)", call.url, r.status_code, attempt + 1)
            continue
        if r.status_code >= 400:
            log.warning("inquiry endpoint %s: HTTP %d, not retried", call.url, r.status_code)
            return None
        return _reply_of(r)
    return None


def _reply_of(r: httpx.Response) -> str | None:
    ctype = r.headers.get("content-type", "")
    text: Any
    if "json" in ctype:
        try:
            body = r.json()
        except ValueError:
            return None
        text = body.get("reply") if isinstance(body, dict) else None
    else:
        text = r.text
    if not isinstance(text, str) or not text.strip():
        return None
    return re.sub(r"\s+", " ", text).strip()[:REPLY_MAX]


def put_endpoint(s: Session, tenant_id: str, name: str, body: dict[str, Any]) -> TenantEndpoint:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise CampaignError("endpoint name must be 1-64 lower-case letters, digits, '_' or '-'")
    url = str(body.get("url") or "")
    parsed = httpx.URL(url) if url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise CampaignError("url must be an http(s) URL")
    timeout = body.get("timeout_s", 3.0)
    retries = body.get("retries", 2)
    if not isinstance(timeout, int | float) or not 0.1 <= timeout <= 30:
        raise CampaignError("timeout_s must be between 0.1 and 30")
    if not isinstance(retries, int) or not 0 <= retries <= 5:
        raise CampaignError("retries must be 0 to 5")
    ep = s.scalar(select(TenantEndpoint).where(TenantEndpoint.tenant_id == tenant_id,
                                               TenantEndpoint.name == name))
    if ep is None:
        ep = TenantEndpoint(tenant_id=tenant_id, name=name, url=url)
        s.add(ep)
    ep.url, ep.timeout_s, ep.retries = url, float(timeout), retries
    s.flush()
    return ep
