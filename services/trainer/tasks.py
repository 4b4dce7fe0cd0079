"""The Celery tasks: validate the JSON job, count the delivery, hold the job's lock, run the job.

Kept thin: the training itself is in :mod:`services.trainer.jobs`, which runs the same way without a
queue. This module is imported by the worker's parent process, so it must not import torch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import BackendError
from kombu.exceptions import OperationalError
from pydantic import ValidationError

from raftflow.celery_config import (
    LEDGER_COMPLETIONS,
    LEDGER_DELIVERIES,
    LEDGER_TRAININGS,
    TASK_REWARD_MODEL,
    TASK_SFT,
)
from raftflow.schemas.jobs import JobProgress, RewardModelJob, SFTJob, TrainingJob
from services.trainer import telemetry
from services.trainer.app import app
from services.trainer.jobs import run_job
from services.trainer.ledger import JobLedger, job_lock
from services.trainer.paths import confine_job
from services.trainer.settings import trainer_settings

log = logging.getLogger(__name__)


class DeliveryLimitExceeded(RuntimeError):
    """The job was delivered more often than allowed: each earlier worker died while running it."""


class InvalidJob(ValueError):
    """The message is not a valid job spec. A plain message: pydantic's own error does not survive
    Celery's JSON exception serialization."""


@app.task(name=TASK_SFT, bind=True)
def sft(self: Task, job: dict[str, Any]) -> dict[str, Any]:
    return execute(self, _validate(SFTJob, job))


@app.task(name=TASK_REWARD_MODEL, bind=True)
def reward_model(self: Task, job: dict[str, Any]) -> dict[str, Any]:
    return execute(self, _validate(RewardModelJob, job))


def _validate(spec: type[TrainingJob], payload: dict[str, Any]) -> TrainingJob:
    """The job as the worker will run it: schema-checked, then its paths confined to
    TRAINER_PATH_ROOTS (the queue is the trust boundary), before the ledger or any file is touched."""
    try:
        job = spec.model_validate(payload)
    except ValidationError as exc:
        raise InvalidJob(f"invalid {spec.__name__}: {exc}") from None
    return confine_job(job, trainer_settings())


def execute(task: Task, job: TrainingJob) -> dict[str, Any]:
    settings = trainer_settings()
    client = redis.Redis.from_url(settings.redis_url)
    ledger = JobLedger(client, job.job_id)
    deliveries = ledger.increment(LEDGER_DELIVERIES)
    trained = False

    def on_training_start() -> None:
        nonlocal trained
        # Checked here, not on arrival: a finished job is returned however often it was delivered.
        if deliveries > settings.max_deliveries:
            raise DeliveryLimitExceeded(
                f"job {job.job_id} was delivered {deliveries} times (limit {settings.max_deliveries}): "
                "the workers running it died (out of memory? killed?); not training it again"
            )
        trained = True
        count = ledger.increment(LEDGER_TRAININGS)
        log.info("job %s: training run %d (delivery %d)", job.job_id, count, deliveries)

    def report(progress: JobProgress) -> None:
        # Progress is advisory: while Redis restarts, training goes on and skips the update (the next
        # one gets through once Redis is back). Not retried (max_retries=0), unlike the final result,
        # which the worker's result_backend_always_retry keeps storing until Redis answers.
        try:
            task.update_state(
                state="PROGRESS", meta=progress.model_dump(include=_PROGRESS_FIELDS), max_retries=0
            )
        except (BackendError, redis.RedisError, OperationalError, OSError) as exc:
            log.warning("job %s: progress update skipped, Redis unreachable: %s", job.job_id, exc)

    started = time.monotonic()
    telemetry.job_started(job.kind)
    outcome, metrics = "failed", None
    try:
        with job_lock(client, job.job_id, settings.lock_ttl):
            result = run_job(job, report, on_training_start, settings)
        outcome, metrics = ("succeeded" if trained else "cached"), result.metrics
        if trained:
            try:
                ledger.increment(LEDGER_COMPLETIONS)
            except redis.RedisError as exc:  # the checkpoint is published: report it, uncounted
                log.error("job %s: could not count its completion: %s", job.job_id, exc)
        return result.model_dump(mode="json")
    finally:
        telemetry.job_finished(job.kind, outcome, time.monotonic() - started, metrics)
        client.close()


_PROGRESS_FIELDS = {"step", "total_steps", "loss", "eta_seconds"}
