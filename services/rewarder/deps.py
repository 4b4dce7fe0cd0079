"""FastAPI dependencies: the per-app objects the lifespan creates, looked up from ``app.state`` so
routes stay free of globals (two apps in one process never share a scorer)."""

from __future__ import annotations

from fastapi import Request

from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings
from services.rewarder.telemetry import RewarderTelemetry


def get_scorer(request: Request) -> Scorer:
    return request.app.state.scorer


def get_settings(request: Request) -> RewarderSettings:
    return request.app.state.settings


def get_telemetry(request: Request) -> RewarderTelemetry:
    return request.app.state.telemetry
