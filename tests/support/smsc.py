"""SMSCs Herald did not write, for tests: jSMPP's simulator (deploy/smsc/smsc.sh, its jars
fetched from Maven Central on first use), and smpp34's server run on a thread of its own so
that a synchronous test can make it send deliver_sm."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SMSC_SH = ROOT / "deploy" / "smsc" / "smsc.sh"


class JsmppSimulator:
    """jSMPP's SMPPServerSimulator on ``port``; it binds one ESME account, herald/herald."""

    system_id = password = "herald"

    def __init__(self, port: int) -> None:
        self.port = port
        self.data_dir = ROOT / ".run" / f"test-smsc-{port}"
        self.env = {**os.environ, "SMSC_PORT": str(port), "SMSC_DATA_DIR": str(self.data_dir)}

    @property
    def log(self) -> str:
        try:
            return (self.data_dir / "smsc.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        # fetch on its own first: on a fresh clone (CI) this resolves the jars from Maven Central
        subprocess.run([str(SMSC_SH), "fetch"], check=True, env=self.env)
        subprocess.run([str(SMSC_SH), "stop"], check=False, env=self.env, capture_output=True)
        subprocess.run([str(SMSC_SH), "start"], check=True, env=self.env)

    def stop(self) -> None:
        subprocess.run([str(SMSC_SH), "stop"], check=False, env=self.env)


class ThreadedSmpp34:
    """smpp34's SMSC on its own event loop thread. It accepts every submit_sm and remembers the
    binds, so a test can send an MO down one with ``deliver`` and get its deliver_sm_resp."""

    def __init__(self, port: int) -> None:
        import smpp34

        self.port = port
        self._smpp34 = smpp34
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"smpp34-{port}", daemon=True)
        self.esmes: list[Any] = []
        self.server: Any = None
        self._pump: asyncio.Future | None = None

    def _call(self, coro: Coroutine, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()

        async def up() -> None:
            self.server = self._smpp34.Server("127.0.0.1", self.port, system_id="SMSC34")
            await self.server.start()
            self._pump = asyncio.ensure_future(self._run())

        self._call(up())

    async def _run(self) -> None:
        while True:
            ev = await self.server.next()
            if isinstance(ev, self._smpp34.SubmitSmEvent):
                ev.accept("1")
            elif not isinstance(ev, self._smpp34.Unbound):
                self.esmes.append(ev)

    def deliver(self, destination: str, body: bytes, **fields: Any) -> Any:
        """A deliver_sm down the newest bind; its deliver_sm_resp."""
        async def send() -> Any:  # smpp34 makes its future on the running loop: call it there
            return await self.esmes[-1].deliver_sm(destination, body, **fields)

        return self._call(send())

    def stop(self) -> None:
        async def down() -> None:
            if self._pump is not None:
                self._pump.cancel()
            await self.server.stop()

        try:
            self._call(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
