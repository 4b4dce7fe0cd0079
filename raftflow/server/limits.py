"""Request size and time limits as ASGI middlewares (body size, body read time, header size)."""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raftflow.settings import CommonSettings


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 before they are buffered.

    Checks the declared Content-Length first, then counts streamed chunks (a chunked upload declares
    none), so a huge or endless body cannot exhaust the server's memory.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        rejected = False

        async def limited_receive():
            # Over the limit: answer 413 ourselves and tell the app the client left, so whatever the
            # app does next (a 400 for a truncated body, say) is swallowed below.
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:
            if not rejected:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, send) -> None:
        await send_error_and_close(send, 413, f"request body over the {self.max_bytes}-byte limit")


class BodyReadTimeout:
    """ASGI middleware: a request body must arrive within ``seconds`` of the app first asking for it,
    else 408 and the connection is closed.

    uvicorn times out idle keep-alive connections but not a client that sends its headers and then
    trickles or stalls its body: the request's task, its buffers and the connection would wait
    forever, and enough such clients exhaust the server. The deadline covers the whole body, not each
    chunk, so one byte every few seconds does not keep it alive either. Reads after the body is
    complete (a streaming response watching for a disconnect) are not timed.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline: float | None = None
        body_complete = False
        timed_out = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal deadline, body_complete, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if body_complete:
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # Tell the app the client left (it stops reading); answer 408 ourselves if we still can.
                timed_out = True
                if not response_started:
                    await send_error_and_close(
                        send, 408, f"request body not received within {self.seconds:g} s"
                    )
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal response_started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except Exception:
            if not timed_out:
                raise


async def send_error_and_close(send: Send, status_code: int, detail: str) -> None:
    """A JSON error with ``Connection: close``: the client is still sending a body the server will not
    read, and closing is the only way to stop it (a kept-alive connection would take the rest of an
    endless upload as a body to discard)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeadSizeLimit:
    """ASGI middleware: 431 for a request whose target and headers exceed ``max_bytes``.

    h11 (see :func:`uvicorn_options`) refuses a head that is still incomplete past the limit, which
    bounds memory; a head that arrived whole in one socket read (up to 256 KiB) is parsed anyway, and
    this check refuses it before the app sees it, so the limit means the same whatever the packet
    boundaries were.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers") or [])
            if size > self.max_bytes:
                await send_error_and_close(send, 431, f"request head over the {self.max_bytes}-byte limit")
                return
        await self.app(scope, receive, send)


def add_request_limits(app: Starlette, settings: CommonSettings) -> None:
    """Install the head size limit, the body size limit and the body read timeout on ``app`` (call it
    where the outermost middleware goes: they must see the raw request before anything buffers it)."""
    app.add_middleware(BodyReadTimeout, seconds=settings.body_read_timeout)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeadSizeLimit, max_bytes=settings.max_header_bytes)
