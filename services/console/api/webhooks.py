"""The webhook API (it was the bridge process's until issue 11): a tenant's webhook deliveries
and the replay of failed ones. The bridge keeps sending them; this only reads and re-queues
through services/bridge/webhooks.py.

    GET  /v1/webhooks/deliveries?status=failed|pending|delivered&limit=N
    POST /v1/webhooks/replay     {} replays every failed delivery, {"ids": [...]} those
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.bridge import webhooks

from .base import ApiBase, BadRequest, int_param, ok, read_json, record

STATUSES = ("pending", "delivered", "failed")


class WebhooksApi(ApiBase):
    def install(self, app: web.Application) -> None:
        self.add(app, "GET", "/v1/webhooks/deliveries", "webhooks", self.get_deliveries)
        self.add(app, "POST", "/v1/webhooks/replay", "webhooks", self.post_replay)

    async def get_deliveries(self, request: web.Request, tenant: str) -> web.Response:
        status = request.query.get("status") or None
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}", field="status")
        limit = max(1, min(1000, int_param(request, "limit", 100)))

        def run(s) -> dict[str, Any]:
            return {"counts": webhooks.counts(s, tenant),
                    "deliveries": webhooks.list_deliveries(s, tenant, status, limit)}
        return ok(await self.tx(run), "webhooks")

    async def post_replay(self, request: web.Request, tenant: str) -> web.Response:
        raw = await request.read()
        body = await read_json(request) if raw.strip() else {}
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(body, dict) or (ids is not None and not (
                isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                              for i in ids))):
            raise BadRequest('body must be {} or {"ids": [<delivery id>, ...]}', field="ids")

        # An id outside the database's id range names no delivery; passed on it overflows the
        # driver's integer instead of matching nothing.
        wanted = None if ids is None else [i for i in ids if 0 < i < 2**63]

        def run(s) -> int:
            n = webhooks.replay(s, tenant, self.settings.webhook_max_age_s, wanted)
            if n:
                record(s, request, "replay", "webhook_deliveries",
                       after={"replayed": n, "ids": ids if ids is not None else "all failed"})
            return n
        return ok({"replayed": await self.tx(run)}, "webhooks")
