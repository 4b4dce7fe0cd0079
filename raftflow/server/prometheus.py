"""Prometheus exposition of one service's own registry."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Response]:
    """A ``GET /metrics`` handler for one service's own registry (not the process-global one, so two
    services in one test process never share counters)."""

    def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
