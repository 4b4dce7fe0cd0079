"""Prometheus metrics on the service's own registry, and a small ASGI middleware that counts requests
by endpoint and status and times them (routes count items; the batcher reports batch sizes)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Only these paths get their own label: labelling arbitrary paths (scanners, typos) would let clients
# grow the registry without bound.
MEASURED_PATHS = frozenset({"/score", "/get_reward", "/info", "/health"})


class RewarderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rewarder_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rewarder_request_latency_seconds",
            "Request latency by endpoint, queueing included.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.items = Counter(
            "rewarder_items", "Items scored, by endpoint.", ["endpoint"], registry=self.registry
        )
        self.truncated = Counter(
            "rewarder_truncated_items", "Items cut to fit the model's context.", registry=self.registry
        )
        self.batch_size = Histogram(
            "rewarder_batch_size",
            "Items per forward pass.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "rewarder_batch_seconds",
            "Time of one batch in the scoring thread.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.queued = Gauge("rewarder_queued_items", "Items waiting for a batch.", registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)


class RequestMetricsMiddleware:
    """Pure ASGI (no per-request task or body buffering, unlike ``BaseHTTPMiddleware``): it only reads
    the status from the response start message."""

    def __init__(self, app: ASGIApp, metrics: RewarderMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in MEASURED_PATHS:
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
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)
