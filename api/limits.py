"""What a connection may cost the server, whatever the route (docs/api.md#limits): a
request's head within the idle timeout (``IdleDeadline``, a uvicorn protocol) and its body
whole within the body timeout and size (``BodyLimits``, an ASGI middleware), so idle or
stalled clients cannot hold sockets and buffers open."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.errors import error_body

# Far above 500 ordinary events (Orb's most per ingest request); without a cap a client
# could make the server buffer any amount before validation runs.
MAX_BODY_BYTES = 5 << 20


class IdleDeadline(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools (its h11 one parses in Python, slower:
    docs/capacity.md#http-ingestion), with its keep-alive timeout also bounding the wait
    for a request's headers.

    uvicorn times out only the wait after a response, and stops the timer at the first
    byte received: a connection that sends nothing, or its headers a byte at a time,
    stays open for good. Here a connection must have a whole request head within
    ``timeout_keep_alive`` seconds of opening or of its previous response; the body's
    time is ``BodyLimits``'."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()

    def _await_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(self.timeout_keep_alive, self._head_overdue)

    def _head_overdue(self) -> None:
        # A request under way has had its whole head (uvicorn starts it only then).
        if self.cycle is None or self.cycle.response_complete:
            self.timeout_keep_alive_handler()


class BodyLimits:
    """Read each request's body whole before the app sees it: at most ``max_bytes``
    (counted while reading: a chunked request has no Content-Length), within ``seconds``
    of its head. Past either, the answer is Orb's error (413 or 408) and the connection
    closes; nothing reaches a route."""

    def __init__(self, app: ASGIApp, seconds: float, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.seconds, self.max_bytes = app, seconds, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await _refuse(413, f"the body is over {self.max_bytes} bytes",
                                      scope, receive, send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(408, f"the body did not arrive within {self.seconds:g} s", scope,
                          receive, send)
            return
        body, given = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal given
            if given:
                return await receive()  # the client's disconnect, when it comes
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(status: int, detail: str, scope: Scope, receive: Receive,
                  send: Send) -> None:
    body: dict[str, Any] = error_body(status, detail)
    await JSONResponse(body, status_code=status, headers={"Connection": "close"})(
        scope, receive, send)
