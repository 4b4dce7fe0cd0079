"""Prometheus metrics of the orchestrator, on its own registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class Telemetry:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.runs = Counter(
            "raftflow_orchestrator_runs", "Runs by outcome", ["outcome"], registry=self.registry
        )
        self.iterations = Counter(
            "raftflow_orchestrator_iterations", "Completed RAFT iterations", registry=self.registry
        )
        self.stage_seconds = Histogram(
            "raftflow_orchestrator_stage_seconds",
            "Wall time of each RAFT stage",
            ["stage"],
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
            registry=self.registry,
        )
