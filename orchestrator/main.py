"""The orchestrator's FastAPI app: wiring only (store, run manager, routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrator.db import make_engine, make_sessionmaker
from orchestrator.paths import warn_if_unconfined
from orchestrator.routes import health, iterations, samples
from orchestrator.routes.dashboard import mount_dashboard
from orchestrator.runner import RunManager
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import RunStore
from orchestrator.telemetry import Telemetry
from raftflow.server.app import create_service_app


def create_app(settings: OrchestratorSettings | None = None) -> FastAPI:
    """``uvicorn orchestrator.main:create_app --factory`` works too (settings from the env only)."""
    settings = settings or OrchestratorSettings()
    telemetry = Telemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        warn_if_unconfined(settings)
        engine = make_engine(settings.resolved_database_url())
        app.state.engine = engine
        app.state.store = RunStore(make_sessionmaker(engine))
        app.state.manager = RunManager(settings, app.state.store, telemetry)
        app.state.manager.start()  # resumes runs left queued/running by a previous process
        yield
        app.state.manager.stop()
        engine.dispose()

    # Every /iterations route needs the token, reads included: a run view carries server paths, the
    # URLs of internal services and their error text, which is more than health or model info. Open:
    # /health, /metrics and the dashboard's static files only.
    app = create_service_app(
        "orchestrator",
        settings,
        telemetry.registry,
        lifespan,
        public=(health.router,),
        protected=(iterations.router, samples.router),
    )
    app.state.telemetry = telemetry
    mount_dashboard(app)  # static files only; the page reads the routes above with the token
    return app
