"""422s for limits known only at run time, in FastAPI's own error shape."""

from __future__ import annotations

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from raftflow.json_values import safe_echo


def limit_error(field: str, message: str, value: object = None, **ctx: object) -> RequestValidationError:
    """A 422 in FastAPI's own error shape for limits known only at run time (configured maxima,
    context length): ``{"detail": [{"loc": ["body", field], "msg": ..., "ctx": {...}}]}``.

    Raise it from a route; FastAPI renders it exactly like a schema violation, so clients parse one
    shape whether the limit is static (pydantic ``Field(le=...)``) or configured.
    """
    loc = ("body", *(int(part) if part.isdigit() else part for part in field.split(".")))
    return RequestValidationError(
        [{"type": "value_error", "loc": loc, "msg": message, "input": value, "ctx": ctx}]
    )


async def validation_error_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body, with refused inputs made printable first: its own handler crashed on a NaN
    or a lone surrogate in ``input`` (JSON cannot carry either), turning a 422 into a 500."""
    return JSONResponse({"detail": safe_echo(jsonable_encoder(exc.errors()))}, status_code=422)
