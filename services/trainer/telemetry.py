"""Prometheus metrics of the trainer worker: jobs by outcome, job duration, training tokens, tokens/s.

Jobs run in Celery's pool children while the worker's parent serves ``/metrics``:
prometheus_client's multiprocess mode joins them (each child writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR``; the parent's endpoint adds them up). prometheus_client picks that mode
when it is first imported, so :func:`serve` sets the directory first thing in the worker's ``main``,
before anything imports it, and the children inherit it through the fork. Without ``TRAINER_METRICS_PORT``
nothing is recorded (a ``raftflow train --local`` job has no endpoint to show it).
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from celery.signals import worker_process_shutdown

from services.trainer.settings import TrainerSettings

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(settings: TrainerSettings) -> None:
    """Start the worker's ``/metrics`` endpoint on ``TRAINER_METRICS_PORT`` (no-op when unset)."""
    if settings.metrics_port is None:
        return
    directory = Path(
        os.environ.setdefault(MULTIPROC_ENV, tempfile.mkdtemp(prefix="raftflow-trainer-metrics-"))
    )
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # a previous worker's counts would be added to ours
        stale.unlink()
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)


@cache
def _metrics() -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    return {
        "jobs": Counter(
            "raftflow_trainer_jobs",
            "Jobs finished, by kind and outcome (succeeded: trained now; cached: an earlier run's "
            "checkpoint returned; failed).",
            ["kind", "outcome"],
        ),
        "running": Gauge(
            "raftflow_trainer_jobs_running", "Jobs running now.", ["kind"], multiprocess_mode="livesum"
        ),
        "duration": Histogram(
            "raftflow_trainer_job_duration_seconds",
            "Wall time of jobs that trained, from delivery to the published checkpoint.",
            ["kind"],
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400),
        ),
        "tokens": Counter("raftflow_trainer_train_tokens", "Non-padding tokens trained on.", ["kind"]),
        "tokens_per_second": Gauge(
            "raftflow_trainer_tokens_per_second",
            "Training-loop tokens/s of the latest job that trained.",
            ["kind"],
            multiprocess_mode="mostrecent",
        ),
    }


def enabled() -> bool:
    return MULTIPROC_ENV in os.environ


def job_started(kind: str) -> None:
    if enabled():
        _metrics()["running"].labels(kind).inc()


def job_finished(kind: str, outcome: str, seconds: float, metrics: dict[str, float] | None) -> None:
    if not enabled():
        return
    recorded = _metrics()
    recorded["running"].labels(kind).dec()
    recorded["jobs"].labels(kind, outcome).inc()
    if outcome == "succeeded":
        recorded["duration"].labels(kind).observe(seconds)
        if metrics:
            recorded["tokens"].labels(kind).inc(metrics.get("train_tokens", 0.0))
            if "tokens_per_second" in metrics:
                recorded["tokens_per_second"].labels(kind).set(metrics["tokens_per_second"])


@worker_process_shutdown.connect
def _forget_dead_child(pid: int | None = None, **_: object) -> None:
    """A replaced child's 'running' gauge must not count forever (livesum gauges are per pid)."""
    if enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
