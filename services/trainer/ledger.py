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

from raftflow.celery_config import RESULT_EXPIRES, ledger_key

log = logging.getLogger(__name__)


class JobLedger:
    def __init__(self, client: redis.Redis, job_id: str) -> None:
        self.client = client
        self.key = ledger_key(job_id)

    def increment(self, field: str) -> int:
        pipe = self.client.pipeline()
        pipe.hincrby(self.key, field, 1)
        pipe.expire(self.key, RESULT_EXPIRES)
        return int(pipe.execute()[0])

    def counts(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.key).items() if v.isdigit()}


@contextlib.contextmanager
def job_lock(client: redis.Redis, job_id: str, ttl: float) -> Iterator[None]:
    """Hold ``raftflow:trainer:lock:JOB_ID`` for the body, renewing it every ``ttl / 3`` seconds so a
    live job never loses it while a dead worker's lock expires after ``ttl``."""
    lock = client.lock(f"raftflow:trainer:lock:{job_id}", timeout=ttl, sleep=0.5, thread_local=False)
    if not lock.acquire(blocking=False):
        log.warning("job %s is running elsewhere; waiting for it to finish", job_id)
        lock.acquire(blocking=True)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                lock.reacquire()
            except LockError as exc:  # expired or taken: renewing further cannot help
                log.error("lost the lock of job %s: %s", job_id, exc)
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
