"""FastAPI dependencies: the per-app objects the lifespan creates, looked up from ``app.state`` so
routes stay free of globals (two apps in one process never share a scorer)."""

from __future__ import annotations

from fastapi import Request

from services.rewarder.metrics import RewarderMetrics
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings


def get_scorer(request: Request) -> Scorer:
    return request.app.state.scorer


def get_settings(request: Request) -> RewarderSettings:
    return request.app.state.settings


def get_metrics(request: Request) -> RewarderMetrics:
    return request.app.state.metrics
