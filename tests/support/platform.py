"""The messaging path as processes: carrier simulator, ingress, router, egress and the console
(the /v1 admin API) on one stack, with a carriers file pointing at the simulator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.core.carriers import sign
from tests.support.infra import Proc, Stack, free_port, wait_until

SECRET = "sim-secret"
TOKEN = "sim-token"


@dataclass
class Platform:
    stack: Stack
    sim: Proc
    ingress: Proc
    router: Proc
    egress: Proc
    console: Proc

    @property
    def processors(self) -> list[Proc]:
        return [self.ingress, self.router, self.egress, self.console]

    def admin(self, key: str, timeout: float = 20) -> httpx.Client:
        """A client of the console's /v1 admin API with a tenant's key."""
        return httpx.Client(base_url=self.console.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {key}"})

    def control(self, **settings) -> None:
        r = httpx.post(f"{self.sim.url}/control", json=settings, timeout=5)
        r.raise_for_status()

    def submissions(self, **filters) -> list[dict]:
        return httpx.get(f"{self.sim.url}/submissions", params=filters, timeout=5).json()

    def mo(self, cmid: str, sender: str, to: str, text: str, **extra) -> httpx.Response:
        raw = json.dumps({"id": cmid, "from": sender, "to": to, "text": text, **extra},
                         ensure_ascii=False).encode()
        return httpx.post(f"{self.ingress.url}/carriers/sim/mo", content=raw, timeout=10,
                          headers={"X-Herald-Signature": sign(SECRET, raw),
                                   "Content-Type": "application/json"})

    def send(self, key: str, **body) -> httpx.Response:
        return httpx.post(f"{self.ingress.url}/v1/messages", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {key}"})

    def message(self, key: str, message_id: str) -> dict | None:
        r = httpx.get(f"{self.ingress.url}/v1/messages/{message_id}", timeout=5,
                      headers={"Authorization": f"Bearer {key}"})
        return r.json() if r.status_code == 200 else None

    def wait_status(self, key: str, message_id: str, status: str, timeout: float = 60) -> dict:
        return wait_until(lambda: (m := self.message(key, message_id)) and m["status"] == status
                          and m, timeout, 0.25, f"message {message_id} {status}")


def start_platform(stack: Stack, tmp: Path, *, egress_workers: int = 1, carrier_rate: float = 1000,
                   sim_dlr_batch: int = 1, carrier_batch: int = 0, **env: str) -> Platform:
    """``carrier_rate``: the simulated carrier's submissions per second (egress's token bucket);
    ``sim_dlr_batch``: most delivery reports per DLR webhook (1: one report per request);
    ``carrier_batch``: most messages per submit request, to the simulator's /submit/batch (0: a
    request per message, to /submit)."""
    sim_port, ingress_port = free_port(), free_port()
    carriers = tmp / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [{
        "name": "sim", "kind": "http", "submit_url": f"http://127.0.0.1:{sim_port}/submit",
        "api_token": TOKEN, "webhook_auth": "hmac", "webhook_secret": SECRET, "prefixes": ["+"],
        "priority": 10, "rate_per_second": carrier_rate, "timeout_s": 3,
        # a carrier on the same host answers in about a millisecond: a few connections carry it
        "options": {"max_connections": 4, **({
            "batch_url": f"http://127.0.0.1:{sim_port}/submit/batch", "batch_max": carrier_batch}
            if carrier_batch else {})}}]}))
    common = {"HERALD_CARRIERS_FILE": str(carriers), **env}
    sim = stack.start("services.simulator", port=sim_port, health=False,
                      HERALD_SIM_PORT=str(sim_port), HERALD_SIM_DLR_DELAY_MS="100",
                      HERALD_SIM_DLR_BATCH=str(sim_dlr_batch),
                      HERALD_SIM_DLR_URL=f"http://127.0.0.1:{ingress_port}/carriers/sim/dlr")
    wait_until(lambda: httpx.get(f"{sim.url}/health", timeout=2).status_code == 200, 30,
               what="simulator up")
    ingress = stack.start("services.ingress", port=ingress_port, **common)
    router = stack.start("services.router", **common)
    egress = stack.start("services.egress", **common)
    for _ in range(egress_workers - 1):
        stack.start("services.egress", **common)
    console = stack.start("services.console", **common)
    return Platform(stack, sim, ingress, router, egress, console)
