"""Re-queue the job of a worker that died whole, without waiting for the visibility timeout.

With ``acks_late`` a job's message stays in Redis' ``unacked`` hash while it runs. When only the job's
child dies, the worker's parent requeues it at once (``task_reject_on_worker_lost``). When the whole
worker dies (SIGKILL, a lost node), nobody does: kombu gives the message back only after the
visibility timeout, 24 h by default (it must exceed the longest job), and the run that waits for the
job hangs that long.

The job lock (:func:`services.trainer.ledger.job_lock`) says whether anyone still runs a job: a live
run renews it every ``TRAINER_LOCK_TTL / 3`` seconds, a dead one loses it ``TRAINER_LOCK_TTL`` after
its last renewal. So every live worker scans the unacknowledged messages every
``TRAINER_RESTORE_INTERVAL`` seconds, and a message whose job lock stays absent for a whole
``TRAINER_LOCK_TTL`` (a live run retakes an expired lock within a third of that) is an orphan: its
visibility deadline is moved to now, and kombu's own restore scan, on the same interval, puts it back
on the queue. With prefetch 1 (celery_config) every unacknowledged message is a job that runs, so it
holds its lock or waits on another run's. A false alarm costs a duplicate delivery, which the lock and
the stored result make a no-op (the duplicate waits, then returns the finished checkpoint).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis
from celery.signals import worker_ready, worker_shutdown

from services.trainer.ledger import lock_key
from services.trainer.settings import trainer_settings

log = logging.getLogger(__name__)

# kombu's Redis transport keys for unacknowledged messages (its defaults; celery_config keeps them).
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"


class OrphanScanner:
    def __init__(self, client: redis.Redis, lock_ttl: float) -> None:
        self.client = client
        self.lock_ttl = lock_ttl
        self._lockless_since: dict[bytes, float] = {}  # delivery tag -> first scan that saw no lock

    def scan(self, now: float | None = None) -> list[str]:
        """One pass; returns the ids of the jobs handed back to the queue."""
        now = time.monotonic() if now is None else now
        lockless: dict[bytes, float] = {}
        rescued = []
        for tag, raw in self.client.hgetall(UNACKED).items():
            job_id = _task_id(raw)
            if job_id is None or self.client.exists(lock_key(job_id)):
                continue
            since = lockless[tag] = self._lockless_since.get(tag, now)
            delivered = self.client.zscore(UNACKED_INDEX, tag)
            if now - since < self.lock_ttl or delivered is None or time.time() - delivered < self.lock_ttl:
                continue
            # Kombu restores every unacked message delivered before now - visibility_timeout: a
            # delivery time of 0 makes this one due at its next scan.
            if self.client.zadd(UNACKED_INDEX, {tag: 0}, xx=True, ch=True):
                log.warning(
                    "job %s: unacknowledged and unlocked for %.0fs, its worker is gone; re-queueing it",
                    job_id,
                    now - since,
                )
                rescued.append(job_id)
        self._lockless_since = lockless
        return rescued


def _task_id(raw: bytes) -> str | None:
    """The Celery task id (= job id) of one ``unacked`` entry: ``[message, exchange, routing_key]``."""
    try:
        return json.loads(raw)[0]["headers"]["id"]
    except (ValueError, LookupError, TypeError):
        return None


_stop = threading.Event()


@worker_ready.connect
def start_orphan_scanner(**_: object) -> None:
    settings = trainer_settings()
    scanner = OrphanScanner(redis.Redis.from_url(settings.redis_url), settings.lock_ttl)

    def loop() -> None:
        while not _stop.wait(settings.restore_interval):
            try:
                scanner.scan()
            except redis.RedisError as exc:  # Redis restarting: the next pass tries again
                log.debug("orphan scan skipped: %s", exc)

    threading.Thread(target=loop, name="orphan-scanner", daemon=True).start()


@worker_shutdown.connect
def stop_orphan_scanner(**_: object) -> None:
    _stop.set()
