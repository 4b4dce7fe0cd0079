"""Bearer-token auth for the HTTP services: one dependency, constant-time comparison."""

from __future__ import annotations

import hmac
from collections.abc import Callable

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
