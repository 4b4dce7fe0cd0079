"""Prometheus telemetry of the rewarder on its own registry: items, batches and the queue (routes count
items; the batcher reports batch sizes). Requests by route and status are counted by the shared
skeleton (raftflow.server.request_telemetry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RewarderTelemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
