"""HTTP request counts and latency, the same two series in every service.

A pure ASGI middleware (no per-request task or body buffering, unlike ``BaseHTTPMiddleware``) placed
outermost by :func:`raftflow.server.app.create_service_app`, so it also counts what the size and time
limits refuse before routing (413, 408, 431). Requests are labelled by route template
(``/iterations/{run_id}``), also when refused before routing (the path is then matched against the
service's route templates here); anything else is ``unmatched``: labelling arbitrary paths (scanners,
typos) would let clients grow the registry without bound.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class RequestTelemetry:
    """``<service>_http_requests_total{route,status}`` and ``<service>_http_request_seconds{route}``."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            f"{service}_http_requests",
            "HTTP requests by route and status code (refusals by the size and time limits included).",
            ["route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            f"{service}_http_request_seconds",
            "Wall time of HTTP requests by route, queueing included.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp, telemetry: RequestTelemetry, routes: Iterable[object]) -> None:
        """``routes``: the service's routes (objects with ``path`` and ``path_regex``, as Starlette's
        and FastAPI's routes have), for requests refused before the router matched them."""
        self.app = app
        self.telemetry = telemetry
        self.templates: list[tuple[re.Pattern[str], str]] = [
            (route.path_regex, route.path)  # type: ignore[attr-defined]
            for route in routes
            if hasattr(route, "path_regex") and hasattr(route, "path")
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # stays 500 when the app raises before answering
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = self._route(scope)
            self.telemetry.requests.labels(route=route, status=str(status)).inc()
            self.telemetry.seconds.labels(route=route).observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        matched = getattr(scope.get("route"), "path", None)  # the router writes the match into scope
        if matched is not None:
            return matched
        path = scope.get("path", "")
        return next((template for regex, template in self.templates if regex.match(path)), "unmatched")
