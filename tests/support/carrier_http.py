"""A carrier's HTTP side for connector tests: a real aiohttp server on a free port that answers as
a test says and keeps what it received, and the network conditions a connector must name (a
connect that never completes, a port nothing listens on)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from tests.support.infra import free_port


@dataclass
class Received:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes
    peer: Any  # the client's (host, port): one per connection it opened


Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def carrier_answering(answer: Answer) -> AsyncIterator[tuple[str, list[Received]]]:
    """(the submit URL, what the carrier received so far) while the server runs."""
    seen: list[Received] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append(Received(request.method, request.path_qs, request.headers.copy(), await request.read(),
                             peer))
        return await answer(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/submit")), seen


def answer_with(status: int, body: str | dict[str, Any] | list[Any] | None = None,
                headers: dict[str, str] | None = None) -> Answer:
    """An answer as a fixture writes it: a str body is sent as it is, anything else as JSON."""
    headers = dict(headers or {})
    if body is None:
        content = b""
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, headers=headers, body=content)

    return answer


def answer_after(seconds: float) -> Answer:
    """Takes the request, then answers only after ``seconds`` (past the connector's timeout)."""
    async def answer(_request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.Response(status=200, text="{}")

    return answer


async def close_without_answer(request: web.Request) -> web.StreamResponse:
    """Reads the request and drops the connection before a byte of answer."""
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0)
    return web.Response(status=500)


@contextmanager
def connect_never_completes() -> Iterator[str]:
    """A URL whose TCP connect hangs: a listener that never accepts, its one-place backlog
    already filled, so the kernel drops further connection attempts (Linux) until it closes."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        yield f"http://127.0.0.1:{port}/submit"
    finally:
        for s in fillers:
            s.close()
        listener.close()


def nothing_listens() -> str:
    """A URL on a local port that nothing listens on: the connect is refused."""
    return f"http://127.0.0.1:{free_port()}/submit"
