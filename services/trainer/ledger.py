"""Per-job bookkeeping in Redis: delivery and training counters, and a lock against duplicate runs.

The counters bound redelivery (a job whose worker keeps dying fails instead of looping) and make
"trained exactly once" observable. The lock covers the case the visibility timeout cannot: a message
redelivered while the first worker still runs it (a too-short timeout, a broker failover). The
duplicate waits, then finds the finished checkpoint and returns it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import redis
from redis.exceptions import LockError
from redis.lock import Lock
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from raftflow.celery_config import RESULT_EXPIRES, ledger_key

log = logging.getLogger(__name__)


class JobLedger:
    def __init__(self, client: redis.Redis, job_id: str, retry_seconds: float = 60.0) -> None:
        self.client = client
        self.key = ledger_key(job_id)
        self.retry_seconds = retry_seconds

    def increment(self, field: str) -> int:
        """Add one to ``field``. A Redis that is unreachable (restarting) is retried with backoff for
        ``retry_seconds``: a job must not fail over its bookkeeping during a short outage. (A reply lost
        after Redis applied the command may count one extra: harmless for these bounds.)"""
        for attempt in Retrying(
            retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
            stop=stop_after_delay(self.retry_seconds),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            before_sleep=lambda state: log.warning(
                "job ledger %s: Redis unreachable (%s); retrying", self.key, state.outcome.exception()
            ),
            reraise=True,
        ):
            with attempt:
                pipe = self.client.pipeline()
                pipe.hincrby(self.key, field, 1)
                pipe.expire(self.key, RESULT_EXPIRES)
                return int(pipe.execute()[0])
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def counts(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.key).items() if v.isdigit()}


def lock_key(job_id: str) -> str:
    """The Redis key of the job's lock: present exactly while a live run of the job holds it."""
    return f"raftflow:trainer:lock:{job_id}"


@contextlib.contextmanager
def job_lock(client: redis.Redis, job_id: str, ttl: float) -> Iterator[None]:
    """Hold ``raftflow:trainer:lock:JOB_ID`` for the body, renewing it every ``ttl / 3`` seconds so a
    live job never loses it while a dead worker's lock expires after ``ttl``."""
    lock = client.lock(lock_key(job_id), timeout=ttl, sleep=0.5, thread_local=False)
    if not lock.acquire(blocking=False):
        log.warning("job %s is running elsewhere; waiting for it to finish", job_id)
        lock.acquire(blocking=True)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                lock.reacquire()
            except LockError:
                # Expired, e.g. Redis was down longer than the TTL (a restart): take it again with our
                # token if nobody else did, or a duplicate delivery could start a parallel run.
                if not _retake(lock, job_id):
                    return
            except redis.RedisError as exc:  # transient: try again next beat
                log.warning("could not renew the lock of job %s: %s", job_id, exc)

    renewer = threading.Thread(target=renew, name=f"lock-{job_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with contextlib.suppress(LockError, redis.RedisError):
            lock.release()


def _retake(lock: Lock, job_id: str) -> bool:
    """Re-acquire an expired ``lock`` with its own token; False (logged) when another run holds it."""
    try:
        if lock.acquire(blocking=False, token=lock.local.token):
            log.warning("the lock of job %s had expired (Redis unreachable?); took it again", job_id)
            return True
    except redis.RedisError as exc:  # Redis went away again: the next beat retries
        log.warning("could not retake the lock of job %s: %s", job_id, exc)
        return True
    log.error("lost the lock of job %s: another run of it holds it now", job_id)
    return False
