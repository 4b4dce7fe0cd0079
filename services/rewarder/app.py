"""The app factory. Loading happens in the lifespan, before uvicorn accepts connections, so a rewarder
that answers /health is ready to score; a load failure (bad path, bad function spec, a calibration set
without spread) ends the process with the cause instead of serving errors."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

import raftflow
from raftflow.conversation import recorded_format, resolve_format
from raftflow.modeling import set_torch_threads
from raftflow.schemas.errors import BODY_ERRORS, UNAUTHORIZED
from raftflow.server import add_request_limits, bearer_auth, metrics_endpoint
from services.rewarder.calibration import calibrate
from services.rewarder.metrics import RequestMetricsMiddleware, RewarderMetrics
from services.rewarder.routes import health, info, openrlhf, score
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings
from services.rewarder.sources import RewardSourceError, build_source

log = logging.getLogger(__name__)


def create_app(settings: RewarderSettings | None = None) -> FastAPI:
    """``uvicorn services.rewarder.app:create_app --factory`` works too (settings from the env only)."""
    settings = settings or RewarderSettings()
    metrics = RewarderMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scorer = await start_scorer(settings, metrics)
        app.state.scorer = scorer
        try:
            yield
        finally:
            await scorer.stop()

    app = FastAPI(title="raftflow rewarder", version=raftflow.__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    # service_api_token refuses a tokenless start unless RAFTFLOW_ALLOW_NO_AUTH says auth is off on purpose.
    auth = Depends(bearer_auth(settings.service_api_token()))
    documented = {**UNAUTHORIZED, **BODY_ERRORS}  # the auth check's 401, the body errors of a POST
    app.include_router(score.router, dependencies=[auth], responses=documented)
    app.include_router(openrlhf.router, dependencies=[auth], responses=documented)
    app.include_router(info.router)
    app.include_router(health.router)
    app.add_route("/metrics", metrics_endpoint(metrics.registry), methods=["GET"], include_in_schema=False)
    add_request_limits(app, settings)  # head and body size limits, body read timeout
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)  # outermost: counts the 413s too
    app.add_exception_handler(RewardSourceError, _source_failed)
    return app


async def start_scorer(settings: RewarderSettings, metrics: RewarderMetrics) -> Scorer:
    set_torch_threads(settings.torch_threads)
    source = await asyncio.to_thread(build_source, settings)
    scorer = Scorer(
        source,
        resolve_format(settings.format, source.tokenizer, recorded_format(source.config)),
        settings,
        on_batch=metrics.observe_batch,
        # torch's thread cap is per thread: the scoring thread must set it for itself.
        thread_initializer=functools.partial(set_torch_threads, settings.torch_threads),
    )
    metrics.queued.set_function(lambda: scorer.batcher.queued)
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
