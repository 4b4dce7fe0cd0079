"""Submit training jobs to the trainer worker through Redis and follow them.

Used by the orchestrator, ``raftflow train`` and the benchmark. It never imports torch: the processes
that submit jobs stay light, and only the worker's job processes load models.

Submission is idempotent: the Celery task id is the job id, a job already queued or running is not
sent again, and a finished job sent again comes back with its stored result (the worker finds the
completed checkpoint). A broker that stays unreachable for ``retry_seconds`` raises
:class:`ComponentUnavailable` naming the trainer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import redis
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from raftflow.celery_config import (
    LEDGER_DELIVERIES,
    LEDGER_SUBMITTED,
    RESULT_EXPIRES,
    TASK_NAMES,
    ledger_key,
    make_celery_app,
)
from raftflow.clients.errors import ComponentUnavailable
from raftflow.schemas.jobs import FINISHED_STATES, JobProgress, JobResult, RewardModelJob, SFTJob

log = logging.getLogger(__name__)

T = TypeVar("T")
CONNECTION_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    OperationalError,
    ConnectionError,
    TimeoutError,
)
IN_FLIGHT = frozenset({"STARTED", "PROGRESS", "RETRY"})


class JobFailed(RuntimeError):
    """The worker ran the job and it failed; the message is the worker's."""

    def __init__(self, job_id: str, message: str) -> None:
        self.job_id = job_id
        self.message = message
        super().__init__(f"training job {job_id} failed: {message}")


class TrainerClient:
    def __init__(self, redis_url: str, retry_seconds: float = 60.0) -> None:
        self.redis_url = redis_url
        self.retry_seconds = retry_seconds
        self._app = make_celery_app("raftflow.trainer.client", redis_url)
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=30)

    def submit(self, job: SFTJob | RewardModelJob) -> str:
        """Queue ``job`` (task id = job id) unless it is already queued or running; returns the id."""
        return self._retrying(self._submit, job)

    def progress(self, job_id: str) -> JobProgress:
        return self._retrying(self._fetch, job_id)[0]

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        on_progress: Callable[[JobProgress], None] | None = None,
    ) -> JobResult:
        """Poll until the job finishes. ``on_progress`` sees every poll (an exception it raises stops
        the wait; the job itself goes on). Raises :class:`JobFailed` with the worker's message,
        :class:`TimeoutError` after ``timeout`` seconds, :class:`ComponentUnavailable` when Redis stays
        unreachable for ``retry_seconds``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress, result = self._retrying(self._fetch, job_id)
            if on_progress is not None:
                on_progress(progress)
            if progress.state == "SUCCESS":
                return JobResult.model_validate(result)
            if progress.finished:
                raise JobFailed(job_id, progress.error or progress.state)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"training job {job_id} still {progress.state} after {timeout}s")
            time.sleep(poll_interval)

    def cancel(self, job_id: str) -> None:
        """Revoke the job: a queued one never starts, a running one's worker child is terminated
        (SIGTERM; its device memory goes with the process) and the job ends REVOKED, not requeued."""
        self._retrying(partial(self._app.control.revoke, job_id, terminate=True, signal="SIGTERM"))

    def close(self) -> None:
        self._app.close()
        self._redis.close()

    def __enter__(self) -> TrainerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, job: SFTJob | RewardModelJob) -> str:
        key = ledger_key(job.job_id)
        status = self._app.backend.get_task_meta(job.job_id)["status"]
        if status in IN_FLIGHT or (status == "PENDING" and self._redis.hexists(key, LEDGER_SUBMITTED)):
            log.info("job %s is already %s; not sending it again", job.job_id, status.lower())
            return job.job_id
        if status in FINISHED_STATES:
            # Forget the old outcome so wait() follows this run, not the last one.
            self._app.AsyncResult(job.job_id).forget()
        self._redis.hdel(key, LEDGER_DELIVERIES)  # a fresh submission gets a fresh delivery budget
        self._app.send_task(TASK_NAMES[job.kind], args=[job.model_dump(mode="json")], task_id=job.job_id)
        # Marked after the send: a send that failed must not block the retry. Two clients racing here
        # may both send; the worker's per-job lock and stored result make the second delivery a no-op.
        pipe = self._redis.pipeline()
        pipe.hset(key, LEDGER_SUBMITTED, time.time())
        pipe.expire(key, RESULT_EXPIRES)
        pipe.execute()
        return job.job_id

    def _fetch(self, job_id: str) -> tuple[JobProgress, Any]:
        meta = self._app.backend.get_task_meta(job_id)
        state, result = meta["status"], meta.get("result")
        if state == "PROGRESS" and isinstance(result, dict):
            return JobProgress(job_id=job_id, state=state, **result), result
        if state == "SUCCESS" and isinstance(result, dict):
            metrics = result.get("metrics", {})
            steps = int(metrics.get("train_steps", 0))
            loss = metrics.get("train_loss_last")
            return JobProgress(job_id=job_id, state=state, step=steps, total_steps=steps, loss=loss), result
        if state in FINISHED_STATES:
            error = f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else str(result)
            return JobProgress(job_id=job_id, state=state, error=error), result
        return JobProgress(job_id=job_id, state=state), result

    def _retrying(self, call: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        retrying = Retrying(
            stop=stop_after_delay(self.retry_seconds),
            wait=wait_exponential(multiplier=0.5, max=5.0),
            retry=retry_if_exception_type(CONNECTION_ERRORS),
            before_sleep=lambda state: log.warning(
                "trainer broker unreachable (%s); retrying",
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        try:
            return retrying(call, *args)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise ComponentUnavailable(
                "trainer", maybe_sanitize_url(self.redis_url), time.monotonic() - started, cause
            ) from cause
