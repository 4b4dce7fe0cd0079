"""FastAPI dependencies: what routes need from the app, without importing the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.generator.engine import Engine
from services.generator.metrics import GeneratorMetrics
from services.generator.settings import GeneratorSettings


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _settings(request: Request) -> GeneratorSettings:
    return request.app.state.settings


def _metrics(request: Request) -> GeneratorMetrics:
    return request.app.state.metrics


EngineDep = Annotated[Engine, Depends(_engine)]
SettingsDep = Annotated[GeneratorSettings, Depends(_settings)]
MetricsDep = Annotated[GeneratorMetrics, Depends(_metrics)]
