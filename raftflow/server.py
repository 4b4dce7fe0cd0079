"""FastAPI plumbing every raftflow service shares: bearer-token auth, Prometheus exposition, request
size and time limits, the uvicorn options and free-port lookup. Routes stay in each service; only the
plumbing lives here."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from raftflow.settings import AuthNotConfigured, CommonSettings

_bearer = HTTPBearer(auto_error=False)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_auth(token: str | None, reads_open: bool = False) -> Callable[..., None]:
    """A dependency that enforces ``Authorization: Bearer <token>`` when a token is configured.

    With no token configured auth is off (local use); read-only health stays open either way because
    routes that should be open simply do not depend on this. ``reads_open`` lets a router guard only
    its mutating methods (POST, PUT, DELETE...) while its GETs stay open.
    """

    def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if token is None or (reads_open and request.method in _SAFE_METHODS):
            return
        # compare_digest: a plain == leaks the token's prefix length through timing.
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Response]:
    """A ``GET /metrics`` handler for one service's own registry (not the process-global one, so two
    services in one test process never share counters)."""

    def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now. There is a small race until the server binds it; callers that
    start servers retry on a bind failure."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def limit_error(field: str, message: str, value: object = None, **ctx: object) -> RequestValidationError:
    """A 422 in FastAPI's own error shape for limits known only at run time (configured maxima,
    context length): ``{"detail": [{"loc": ["body", field], "msg": ..., "ctx": {...}}]}``.

    Raise it from a route; FastAPI renders it exactly like a schema violation, so clients parse one
    shape whether the limit is static (pydantic ``Field(le=...)``) or configured.
    """
    loc = ("body", *field.split("."))
    return RequestValidationError(
        [{"type": "value_error", "loc": loc, "msg": message, "input": value, "ctx": ctx}]
    )


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


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on the request head (request line and headers).

    uvicorn arms its keep-alive timer only after a response and resets it on every byte received,
    so a connection that never sends a request, trickles its headers a byte at a time, or keeps
    sending the unread body of an answered request is held open forever. Here a request must be under
    way ``head_timeout`` seconds after the connection opens or the previous response ends, or the
    connection is closed. Subclass it with :func:`head_timeout_protocol` to set the deadline.
    """

    head_timeout: float = 10.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        # No request in progress: either no complete head arrived since the deadline was armed, or
        # the client is still sending the body of a request already answered without reading it (a
        # 404 or 401), which uvicorn would discard for as long as the client cares to send it. A
        # request in progress is left alone: its body has its own deadline (BodyReadTimeout).
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def head_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """The uvicorn ``http=`` protocol class with a ``seconds`` request-head deadline."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout": seconds})


def uvicorn_options(settings: CommonSettings) -> dict[str, Any]:
    """The connection limits every service passes to ``uvicorn.run``.

    h11 rather than httptools (uvicorn's default when installed): httptools buffers a request head
    of any size (a 100 MB header line is read into memory), h11 stops at ``max_header_bytes`` with a
    400. The services' time goes to models, not to HTTP parsing, so h11's slower parser costs nothing
    measurable here.
    """
    return {
        "http": head_timeout_protocol(settings.header_read_timeout),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "limit_concurrency": settings.max_connections,
    }


def serve(create_app: Callable[[Any], Starlette], settings: CommonSettings, **uvicorn_extra: Any) -> None:
    """Configure logging, build the app and run uvicorn with :func:`uvicorn_options`: every service's
    ``__main__``. A refusal to start (no token configured) exits with the reason and no traceback:
    it is a configuration error, not a crash. ``settings`` is the service's own settings class (it
    adds ``port``)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app(settings)
    except AuthNotConfigured as exc:
        sys.exit(f"error: {exc}")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,  # type: ignore[attr-defined]
        log_level=settings.log_level.lower(),
        **uvicorn_options(settings),
        **uvicorn_extra,
    )
