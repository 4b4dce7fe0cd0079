"""Liveness (open, read-only); ``/metrics`` comes with the service skeleton (raftflow.server.app)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> dict[str, str]:
    with request.app.state.engine.connect() as conn:  # the store is the one thing we cannot run without
        conn.execute(text("select 1"))
    return {"status": "ok"}
