"""Error bodies that every client of this service can parse.

OpenAI-style routes keep FastAPI's shape (``{"detail": [...]}``, loc naming the field). The TGI routes
add TGI's ``{"error": ..., "error_type": ...}`` beside it, because the ``text-generation`` client reads
``payload["error"]`` from any non-200 answer and fails with a KeyError on anything else.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from raftflow.json_values import safe_echo
from raftflow.server.errors import validation_error_response

TGI_PATHS = frozenset({"/", "/generate"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    if request.url.path not in TGI_PATHS:
        return await validation_error_response(request, exc)
    errors = safe_echo(jsonable_encoder(exc.errors()))
    summary = "; ".join(f"{'.'.join(str(part) for part in e['loc'][1:])}: {e['msg']}" for e in errors)
    return JSONResponse({"error": summary, "error_type": "validation", "detail": errors}, status_code=422)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    response = await http_exception_handler(request, exc)
    if request.url.path not in TGI_PATHS or not isinstance(response, JSONResponse):
        return response
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    error_type = (
        "overloaded" if exc.status_code == 503 else "validation" if exc.status_code < 500 else "generation"
    )
    return JSONResponse(
        {"error": detail, "error_type": error_type, "detail": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )
