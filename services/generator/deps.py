"""FastAPI dependencies: what routes need from the app, without importing the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.generator.engine import Engine
from services.generator.settings import GeneratorSettings
from services.generator.telemetry import GeneratorTelemetry


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _settings(request: Request) -> GeneratorSettings:
    return request.app.state.settings


def _telemetry(request: Request) -> GeneratorTelemetry:
    return request.app.state.telemetry


EngineDep = Annotated[Engine, Depends(_engine)]
SettingsDep = Annotated[GeneratorSettings, Depends(_settings)]
TelemetryDep = Annotated[GeneratorTelemetry, Depends(_telemetry)]
