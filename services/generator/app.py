"""The generator's FastAPI app factory: wires settings, engine, routes, auth, metrics and errors.

``uvicorn services.generator.app:create_app --factory`` works too (settings then come from the
environment only).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response

from raftflow.modeling import set_torch_threads
from raftflow.schemas.errors import BODY_ERRORS, UNAUTHORIZED
from raftflow.server import add_request_limits, bearer_auth, metrics_endpoint
from services.generator.engine import Engine
from services.generator.errors import install_error_handlers
from services.generator.metrics import GeneratorMetrics
from services.generator.routes import completions, health, logprobs, models, tgi
from services.generator.settings import GeneratorSettings


def build_engine(settings: GeneratorSettings, metrics: GeneratorMetrics) -> Engine:
    # Imported here: the tgi backend never needs torch, and torch takes seconds to import.
    if settings.backend == "tgi":
        from services.generator.engine.tgi_engine import TGIEngine

        return TGIEngine(settings, metrics)
    if settings.backend == "vllm":
        from services.generator.engine.vllm_engine import VLLMEngine

        return VLLMEngine(settings, metrics)
    from services.generator.engine.transformers_engine import TransformersEngine

    return TransformersEngine(settings, metrics)


def create_app(settings: GeneratorSettings | None = None) -> FastAPI:
    settings = settings or GeneratorSettings()
    metrics = GeneratorMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.backend != "tgi":  # vllm: the tokenizer and an in-process reference model
            set_torch_threads(settings.torch_threads)
        engine = build_engine(settings, metrics)
        await engine.start()  # the model is loaded before the port accepts requests
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.close()

    app = FastAPI(title="raftflow generator", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)

    # service_api_token refuses a tokenless start unless RAFTFLOW_ALLOW_NO_AUTH says auth is off on purpose.
    auth = [Depends(bearer_auth(settings.service_api_token()))]
    for router in (health.public, models.public, tgi.public):
        app.include_router(router)
    for router in (completions.protected, logprobs.protected, models.protected, tgi.protected):
        # Documented: the 401 of the auth check, and the body errors (every protected route takes one).
        app.include_router(router, dependencies=auth, responses={**UNAUTHORIZED, **BODY_ERRORS})
    app.add_route("/metrics", metrics_endpoint(metrics.registry), include_in_schema=False)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status_code = 500
        try:
            response = await call_next(request)
            status_code = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            label = getattr(route, "path", "unmatched")
            metrics.http_requests.labels(route=label, status=str(status_code)).inc()
            metrics.request_seconds.labels(route=label).observe(time.perf_counter() - started)

    add_request_limits(app, settings)  # outermost: size and time limits before any buffering
    return app
