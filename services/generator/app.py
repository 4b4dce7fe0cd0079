"""The generator's FastAPI app factory: wires settings, engine, routes, auth, telemetry and errors.

``uvicorn services.generator.app:create_app --factory`` works too (settings then come from the
environment only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from raftflow.modeling import set_torch_threads
from raftflow.server.app import create_service_app
from services.generator.engine import Engine
from services.generator.errors import install_error_handlers
from services.generator.routes import completions, health, logprobs, models, tgi_compat
from services.generator.settings import GeneratorSettings
from services.generator.telemetry import GeneratorTelemetry


def build_engine(settings: GeneratorSettings, telemetry: GeneratorTelemetry) -> Engine:
    # Imported here: the tgi backend never needs torch, and torch takes seconds to import.
    if settings.backend == "tgi":
        from services.generator.engine.tgi_engine import TGIEngine

        return TGIEngine(settings, telemetry)
    if settings.backend == "vllm":
        from services.generator.engine.vllm_engine import VLLMEngine

        return VLLMEngine(settings, telemetry)
    from services.generator.engine.transformers_engine import TransformersEngine

    return TransformersEngine(settings, telemetry)


def create_app(settings: GeneratorSettings | None = None) -> FastAPI:
    settings = settings or GeneratorSettings()
    telemetry = GeneratorTelemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.backend != "tgi":  # vllm: the tokenizer and an in-process reference model
            set_torch_threads(settings.torch_threads)
        engine = build_engine(settings, telemetry)
        await engine.start()  # the model is loaded before the port accepts requests
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.close()

    app = create_service_app(
        "generator",
        settings,
        telemetry.registry,
        lifespan,
        public=(health.public, models.public, tgi_compat.public),
        protected=(completions.protected, logprobs.protected, models.protected, tgi_compat.protected),
    )
    app.state.telemetry = telemetry
    install_error_handlers(app)
    return app
