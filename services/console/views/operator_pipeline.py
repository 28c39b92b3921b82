"""Operator pages on the pipeline (platform role only): every process's /health, consumer-group
lag per topic and partition, the processes under the supervisor, the DLQ topics with their
counts, a DLQ browser (reason, original bytes) and replay of chosen records. The Kafka side is
services/core/kafka_admin.py and services/core/dlq_replay.py (the same code as `herald dlq`)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from services.core import dlq_replay as dq
from services.core import kafka_admin

from .. import i18n
from ..domain import platform
from ..web import console_of, redirect, render, requires

routes = web.RouteTableDef()
log = logging.getLogger("herald.console")
KAFKA_TIMEOUT_S = 3.0


async def _kafka(fn, *args, **kw):
    """A blocking Kafka call off the loop; (result, None) or (None, the error for the page)."""
    try:
        return await asyncio.to_thread(fn, *args, **kw), None
    except Exception as exc:  # noqa: BLE001 - shown on the page, the rest still renders
        log.warning("operator: %s failed: %s", getattr(fn, "__name__", fn), exc)
        return None, str(exc) or type(exc).__name__


async def _pipeline(request: web.Request) -> dict:
    settings = console_of(request).settings
    healths, (groups, lag_error), (dlqs, dlq_error) = await asyncio.gather(
        kafka_admin.healths(settings),
        _kafka(kafka_admin.lag, settings, timeout=KAFKA_TIMEOUT_S),
        _kafka(dq.topics, settings, timeout=KAFKA_TIMEOUT_S))
    return {"healths": healths, "groups": groups or [], "lag_error": lag_error,
            "dlqs": dlqs or [], "dlq_error": dlq_error,
            "state": platform.stack_state(Path(settings.stack_state_file))}


@routes.get("/operator/pipeline")
@requires(platform=True)
async def pipeline_page(request: web.Request) -> web.Response:
    return render(request, "operator_pipeline.html", title=i18n.gettext("Pipeline health"),
                  tab="pipeline", **await _pipeline(request))


@routes.get("/operator/pipeline/live")
@requires(platform=True)
async def pipeline_live(request: web.Request) -> web.Response:
    return render(request, "_operator_pipeline_live.html", **await _pipeline(request))


# -- dead letters --------------------------------------------------------------------------------

def _dlq_topic(request: web.Request) -> str:
    topic = request.match_info["topic"]
    if not dq.is_dlq(topic):
        raise web.HTTPNotFound()
    return topic


@routes.get("/operator/dlq")
@requires(platform=True)
async def dlq_topics(request: web.Request) -> web.Response:
    dlqs, error = await _kafka(dq.topics, console_of(request).settings, timeout=KAFKA_TIMEOUT_S)
    return render(request, "operator_dlq.html", title=i18n.gettext("Dead letters"), tab="dlq",
                  dlqs=dlqs or [], error=error, topic=None, page=None)


@routes.get("/operator/dlq/{topic}")
@requires(platform=True)
async def dlq_records(request: web.Request) -> web.Response:
    console = console_of(request)
    topic = _dlq_topic(request)
    try:
        before = int(request.query["before"]) if request.query.get("before") else None
    except ValueError:
        before = None
    dlqs, error = await _kafka(dq.topics, console.settings, timeout=KAFKA_TIMEOUT_S)
    page, read_error = await _kafka(dq.read, console.settings, topic, before=before,
                                    timeout=KAFKA_TIMEOUT_S)
    if read_error and dlqs is not None and topic not in {t.catalogue for t in dlqs}:
        raise web.HTTPNotFound()
    if page is not None:
        await console.run(lambda s: dq.with_replays(s, page.letters))
    return render(request, "operator_dlq.html", title=i18n.gettext("Dead letters"), tab="dlq",
                  dlqs=dlqs or [], error=error or read_error, topic=topic, page=page)


@routes.get("/operator/dlq/{topic}/{partition:\\d+}/{offset:\\d+}")
@requires(platform=True)
async def dlq_record(request: web.Request) -> web.Response:
    console = console_of(request)
    topic = _dlq_topic(request)
    letter, error = await _kafka(dq.fetch, console.settings, topic, int(request.match_info["partition"]),
                                 int(request.match_info["offset"]), timeout=KAFKA_TIMEOUT_S)
    if letter is None and error is None:
        raise web.HTTPNotFound()
    if letter is not None:
        await console.run(lambda s: dq.with_replays(s, [letter]))
    return render(request, "operator_dlq_record.html", title=i18n.gettext("Dead letter"), tab="dlq",
                  topic=topic, letter=letter, error=error)


@routes.post("/operator/dlq/{topic}/replay")
@requires(platform=True, write=True)
async def dlq_replay(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    topic = _dlq_topic(request)
    form = await request.post()
    back = f"/operator/dlq/{topic}"
    try:
        refs = [dq.parse_ref(str(r)) for r in form.getall("ref", [])]
    except ValueError:
        refs = []
    if not refs:
        raise redirect(back, i18n.gettext("Choose the records to replay first."), "error")
    actor = request["principal"].actor

    def go() -> list[dq.Outcome]:
        letters, missing = [], []
        for partition, offset in refs:
            d = dq.fetch(console.settings, topic, partition, offset, timeout=KAFKA_TIMEOUT_S)
            if d is None:
                missing.append(dq.Outcome(f"{partition}:{offset}", "not_found",
                                          "the topic no longer holds this record"))
            else:
                letters.append(d)
        return dq.replay(console.settings, console.db, letters, actor) + missing

    outcomes, error = await _kafka(go)
    if error is not None:
        raise redirect(back, i18n.gettext("The broker could not be reached: %(error)s", error=error),
                       "error")
    done = sum(1 for o in outcomes if o.ok)
    words = {"resent": i18n.gettext("sent again"), "reset_and_resent": i18n.gettext("reset and sent again"),
             "reinjected": i18n.gettext("back on its topic"),
             "already_replayed": i18n.gettext("replayed before, not again"),
             "skipped": i18n.gettext("its message has moved on, not sent again"),
             "invalid": i18n.gettext("not a valid event, not replayed"),
             "not_found": i18n.gettext("no longer in the topic"),
             "failed": i18n.gettext("the broker did not take it")}
    detail = "; ".join(f"{o.ref}: {words.get(o.outcome, o.outcome)}" for o in outcomes)
    message = i18n.ngettext("%(num)d of %(total)d record replayed (%(detail)s).",
                            "%(num)d of %(total)d records replayed (%(detail)s).", done,
                            total=len(outcomes), detail=detail)
    raise redirect(back, message, "success" if done == len(outcomes) else "error")
