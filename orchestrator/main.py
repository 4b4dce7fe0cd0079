"""The orchestrator's FastAPI app: wiring only (store, run manager, routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from orchestrator.db import make_engine, make_sessionmaker
from orchestrator.paths import warn_if_unconfined
from orchestrator.routes import health, iterations, samples
from orchestrator.routes.dashboard import mount_dashboard
from orchestrator.runner import RunManager
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import RunStore
from orchestrator.telemetry import Telemetry
from raftflow.server import add_request_limits, bearer_auth


def create_app(settings: OrchestratorSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        warn_if_unconfined(settings)
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
    # Every /iterations route needs the token, reads included: a run view carries server paths, the
    # URLs of internal services and their error text, which is more than health or model info. Open:
    # /health and /metrics only. service_api_token refuses a tokenless start unless
    # RAFTFLOW_ALLOW_NO_AUTH turns auth off on purpose.
    auth = bearer_auth(settings.service_api_token())
    app.include_router(iterations.router, dependencies=[Depends(auth)])
    app.include_router(samples.router, dependencies=[Depends(auth)])
    mount_dashboard(app)  # static files only; the page reads the routes above with the token
    add_request_limits(app, settings)  # a run body is small: the shared size and time limits apply
    return app
