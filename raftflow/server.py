"""FastAPI plumbing every raftflow service shares: bearer-token auth, Prometheus exposition, the
uvicorn launcher and free-port lookup. Routes stay in each service; only the plumbing lives here."""

from __future__ import annotations

import hmac
import socket
from collections.abc import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
        body = f'{{"detail": "request body over the {self.max_bytes}-byte limit"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
