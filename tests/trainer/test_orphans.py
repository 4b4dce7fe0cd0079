"""The orphan scan on a real Redis: an unacknowledged job whose lock stays gone for a whole lock TTL is
handed back to kombu's restore scan; a locked, freshly delivered or briefly unlocked job is not."""

from __future__ import annotations

import json
import time

import redis

from services.trainer.ledger import lock_key
from services.trainer.orphans import UNACKED, UNACKED_INDEX, OrphanScanner

TTL = 10.0


def _deliver(client: redis.Redis, tag: str, job_id: str, delivered_at: float) -> None:
    """What kombu's Redis transport stores for a message a worker holds unacknowledged."""
    client.hset(UNACKED, tag, json.dumps([{"headers": {"id": job_id}}, "", "raftflow.trainer"]))
    client.zadd(UNACKED_INDEX, {tag: delivered_at})


def test_only_a_job_unlocked_for_a_whole_ttl_is_requeued(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    long_ago = time.time() - 100
    _deliver(client, "dead", "job-dead", long_ago)  # its worker died: no lock
    _deliver(client, "alive", "job-alive", long_ago)  # still training: lock held
    _deliver(client, "fresh", "job-fresh", time.time())  # just delivered, lock not taken yet
    _deliver(client, "flaky", "job-flaky", long_ago)  # lock lapses, then is retaken
    client.set(lock_key("job-alive"), "token")
    scanner = OrphanScanner(client, lock_ttl=TTL)

    assert scanner.scan(now=0.0) == []  # first sighting without a lock starts the clock
    client.set(lock_key("job-flaky"), "token")  # retaken within the TTL: the clock resets
    assert scanner.scan(now=5.0) == []
    client.delete(lock_key("job-flaky"))
    assert scanner.scan(now=TTL + 1) == ["job-dead"]

    assert client.zscore(UNACKED_INDEX, "dead") == 0  # due at kombu's next restore scan
    assert client.zscore(UNACKED_INDEX, "alive") > 0
    assert client.zscore(UNACKED_INDEX, "fresh") > 0  # delivered less than a TTL ago
    assert client.zscore(UNACKED_INDEX, "flaky") > 0  # unlocked only since t=11
    assert scanner.scan(now=2 * TTL + 2) == ["job-flaky"]


def test_an_entry_that_is_not_a_celery_message_is_skipped(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset(UNACKED, "junk", b"not json")
    client.zadd(UNACKED_INDEX, {"junk": time.time() - 100})
    scanner = OrphanScanner(client, lock_ttl=TTL)
    assert scanner.scan(now=0.0) == [] and scanner.scan(now=TTL + 1) == []
    assert client.zscore(UNACKED_INDEX, "junk") > 0
