"""422s for limits known only at run time, in FastAPI's own error shape."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError


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
