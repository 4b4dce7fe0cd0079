"""Bearer-token auth for the HTTP services: one dependency, constant-time comparison."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


def caller_has_token(request: Request) -> bool:
    """For open routes that show more to a caller with the token (``app.state.api_token``, set by the
    service skeleton; None: auth is off, everyone may see everything). Never raises, and reads the
    header itself: a security dependency would mark the open route as needing a token in OpenAPI."""
    token: str | None = request.app.state.api_token
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


CallerHasToken = Annotated[bool, Depends(caller_has_token)]


def public_model_id(checkpoint: str, version: str) -> str:
    """What an open route shows of a served model to a caller without the token: a hub id as it is,
    a local checkpoint as its folder name and version, never its path (which names the artifacts
    directory and run ids)."""
    if checkpoint == version:  # a hub id: raftflow.modeling.checkpoint_version names it by itself
        return checkpoint
    return f"{Path(checkpoint).name}@{version}"
