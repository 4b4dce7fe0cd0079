"""The app factory. Loading happens in the lifespan, before uvicorn accepts connections, so a rewarder
that answers /health is ready to score; a load failure (bad path, bad function spec, a calibration set
without spread) ends the process with the cause instead of serving errors."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from raftflow.conversation import recorded_format, resolve_format
from raftflow.modeling import set_torch_threads
from raftflow.server.app import create_service_app
from services.rewarder.calibration import calibrate
from services.rewarder.routes import health, info, openrlhf, score
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings
from services.rewarder.sources import RewardSourceError, build_source
from services.rewarder.telemetry import RewarderTelemetry

log = logging.getLogger(__name__)


def create_app(settings: RewarderSettings | None = None) -> FastAPI:
    """``uvicorn services.rewarder.app:create_app --factory`` works too (settings from the env only)."""
    settings = settings or RewarderSettings()
    telemetry = RewarderTelemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scorer = await start_scorer(settings, telemetry)
        app.state.scorer = scorer
        try:
            yield
        finally:
            await scorer.stop()

    app = create_service_app(
        "rewarder",
        settings,
        telemetry.registry,
        lifespan,
        public=(info.router, health.router),
        protected=(score.router, openrlhf.router),
    )
    app.state.telemetry = telemetry
    app.add_exception_handler(RewardSourceError, _source_failed)
    return app


async def start_scorer(settings: RewarderSettings, telemetry: RewarderTelemetry) -> Scorer:
    set_torch_threads(settings.torch_threads)
    source = await asyncio.to_thread(build_source, settings)
    scorer = Scorer(
        source,
        resolve_format(settings.format, source.tokenizer, recorded_format(source.config)),
        settings,
        on_batch=telemetry.observe_batch,
        # torch's thread cap is per thread: the scoring thread must set it for itself.
        thread_initializer=functools.partial(set_torch_threads, settings.torch_threads),
    )
    telemetry.queued.set_function(lambda: scorer.batcher.queued)
    await scorer.start()
    if settings.calibration_file is not None:
        try:
            scorer.calibration = await calibrate(scorer, settings.calibration_file)
        except BaseException:
            await scorer.stop()
            raise
        log.info("calibration: %s", scorer.calibration)
    log.info("serving %s %s (%s, format %s)", source.kind, source.name, source.version, scorer.style)
    return scorer


async def _source_failed(_: Request, exc: Exception) -> JSONResponse:
    log.error("reward source failed: %s", exc)
    return JSONResponse(status_code=500, content={"detail": str(exc)})
