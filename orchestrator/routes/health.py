"""Liveness (open, read-only); ``/metrics`` comes with the service skeleton (raftflow.server.app).

The database check runs on a thread of its own, not on the thread pool that serves the sync routes:
60 concurrent ``metrics.png`` renders there made a probe wait 5 s, long enough for Kubernetes to
restart a healthy orchestrator.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from raftflow.schemas.errors import error_responses

router = APIRouter(tags=["health"])

_health_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")
# A probe answers within this long either way: a database that does not answer is a 503, not a hang.
DATABASE_CHECK_TIMEOUT_S = 5.0


@router.get("/health", responses=error_responses(503, e503="The run store does not answer."))
async def health(request: Request) -> JSONResponse:
    engine = request.app.state.engine

    def select_one() -> None:  # the store is the one thing we cannot run without
        with engine.connect() as conn:
            conn.execute(text("select 1"))

    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(_health_thread, select_one), DATABASE_CHECK_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 (any failure of the store is "unavailable")
        return JSONResponse({"status": "unavailable", "reason": exc.__class__.__name__}, status_code=503)
    return JSONResponse({"status": "ok"})
