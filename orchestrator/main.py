"""The orchestrator's FastAPI app: wiring only (store, run manager, routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from orchestrator.db import make_engine, make_sessionmaker
from orchestrator.routes import health, iterations
from orchestrator.runner import RunManager
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import RunStore
from orchestrator.telemetry import Telemetry
from raftflow.server import bearer_auth


def create_app(settings: OrchestratorSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url())
        app.state.engine = engine
        app.state.store = RunStore(make_sessionmaker(engine))
        app.state.telemetry = Telemetry()
        app.state.manager = RunManager(settings, app.state.store, app.state.telemetry)
        app.state.manager.start()  # resumes runs left queued/running by a previous process
        yield
        app.state.manager.stop()
        engine.dispose()

    app = FastAPI(title="raftflow orchestrator", version="0.1.0", lifespan=lifespan)
    app.include_router(health.router)
    # Reads are open like the other services' info endpoints; starting and cancelling runs need the token.
    auth = bearer_auth(settings.resolved_api_token(), reads_open=True)
    app.include_router(iterations.router, dependencies=[Depends(auth)])
    return app
