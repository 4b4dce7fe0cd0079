"""Refuse JSON request bodies holding values no field can mean (``raftflow.json_values``).

Left to the routes, a ``NaN`` or a lone surrogate either passed validation and reached a tokenizer
(500: ``TextEncodeInput must be ...``) or made the 422 handler itself crash while echoing the input
back (``Out of range float values are not JSON compliant``, ``UnicodeEncodeError``). This ASGI
middleware checks every JSON request body once, before any route sees it, and answers a 422 in
FastAPI's own shape that names the field (``loc``) and why.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raftflow.json_values import BadValue, Location, first_bad_value, safe_echo

# Cheap pre-scan: only a body holding one of these can hold a bad value (a non-finite constant, a
# number with an exponent that may overflow, a huge digit run, or a surrogate escape).
_SUSPECT = re.compile(rb"NaN|Infinity|\d[eE]|\d{300}|\\u[dD][89a-fA-F]", re.ASCII)


class JSONValuesCheck:
    """ASGI middleware: a JSON request body with a non-finite number or a lone surrogate gets 422
    naming the field, before the app parses it.

    The body is checked when the app asks for it, not before: a route that answers without reading
    its body (a 404, a 401) still does, and a trickling body is bounded by the read-time limit outside
    this middleware exactly as without it. The app gets the whole body in one message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        body_read = False
        refused = False

        async def checked_receive() -> Message:
            nonlocal body_read, refused
            if refused:
                return {"type": "http.disconnect"}
            if body_read:  # after the body: disconnect watchers and the like read the connection
                return await receive()
            body = bytearray()
            while True:  # the size and read-time limits outside this middleware bound this loop
                message = await receive()
                if message["type"] != "http.request":
                    return message  # the client left mid-body: the app sees it as usual
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            body_read = True
            bad = _check(bytes(body))
            if bad is not None:
                refused = True
                await _refuse(send, *bad)
                return {"type": "http.disconnect"}  # the app stops; what it sends is dropped below
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, checked_receive, guarded_send)
        except Exception:
            if not refused:
                raise


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True  # FastAPI parses a body without a content type as JSON too


def _check(body: bytes) -> BadValue | None:
    if not body or not _SUSPECT.search(body):
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the app answers its own parse error
    return first_bad_value(value)


async def _refuse(send: Send, loc: Location, error_type: str, message: str) -> None:
    detail = safe_echo([{"type": error_type, "loc": ["body", *loc], "msg": message}])
    where = ".".join(str(part) for part in detail[0]["loc"][1:])
    # "error" and "error_type" too: TGI's client reads them from any non-200 answer (a KeyError
    # otherwise); FastAPI clients read "detail".
    body = {"detail": detail, "error": f"{where}: {message}", "error_type": "validation"}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
