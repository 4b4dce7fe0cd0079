"""Error bodies and the ``responses=`` entries that declare them in the services' OpenAPI schemas.

FastAPI documents a route's success status and its 422 on its own; every other status a route can
answer (401 from the bearer check, 404 for an unknown run, 409, 503) must be declared, or the schema
tells clients those answers cannot happen. tests/reliability/test_fuzz.py fails on any status a route
returns without declaring it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """What ``HTTPException`` renders: ``{"detail": "..."}`` (the TGI routes add ``error`` and
    ``error_type`` beside it for the ``text-generation`` client)."""

    detail: str = Field(description="What went wrong, in words.")


_DESCRIPTIONS = {
    400: "The body could not be parsed (e.g. JSON that is not UTF-8).",
    401: "Missing or invalid bearer token (RAFTFLOW_API_TOKEN).",
    404: "No such resource.",
    408: "The request body did not arrive within RAFTFLOW_BODY_READ_TIMEOUT seconds.",
    409: "The request conflicts with the resource's state.",
    413: "The request body is over RAFTFLOW_MAX_BODY_BYTES.",
    503: "A backend the request needs is unavailable; retry later.",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for ``codes``, each with the :class:`ErrorDetail` body. ``descriptions`` override
    the generic wording per code, keyed ``e404=...`` (keyword names cannot start with a digit)."""
    return {
        code: {
            "model": ErrorDetail,
            "description": descriptions.get(f"e{code}", _DESCRIPTIONS.get(code, "Error.")),
        }
        for code in codes
    }


UNAUTHORIZED = error_responses(401)
"""Declared by every route behind :func:`raftflow.server.bearer_auth`."""

BODY_ERRORS = error_responses(400, 408, 413)
"""Declared by every route that reads a JSON body: FastAPI answers 400 for one it cannot decode, the
shared limits of :func:`raftflow.server.add_request_limits` 408 and 413."""
