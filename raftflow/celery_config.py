"""Celery settings shared by the trainer worker and every client that submits to it.

Both sides build their app from :func:`make_celery_app`, so they agree on serializers, queue and task
names, and on the Redis keys that carry each job's bookkeeping. The choices, for jobs that run hours:

- JSON only (``accept_content``): a pickle payload from anyone who can reach Redis would run code.
- ``task_acks_late`` + ``worker_prefetch_multiplier=1``: a job is acknowledged when it finishes, not
  when it starts, so a worker that dies mid-job leaves the message to be delivered again; and a busy
  worker holds no second job hostage.
- ``task_reject_on_worker_lost``: without it, a child killed by SIGKILL or the OOM killer is *acked*
  and the job is silently lost. Because a job that always crashes would then loop, the worker counts
  deliveries per job in Redis (:func:`ledger_key`) and fails the job after a bound.
- ``visibility_timeout`` above the longest job: Redis redelivers any message unacked for that long,
  and a too-short value restarts long training in a loop (celery#5935). The shortest value among apps
  sharing a broker wins, so clients use the same default as the worker.
- ``task_track_started`` and ``result_extended``: STARTED and the job's arguments are visible in the
  result backend, so the orchestrator can tell "queued" from "running".
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from raftflow.schemas.jobs import JobKind

TASK_SFT = "raftflow.sft"
TASK_REWARD_MODEL = "raftflow.reward_model"
TASK_NAMES: dict[JobKind, str] = {"sft": TASK_SFT, "reward_model": TASK_REWARD_MODEL}
QUEUE = "raftflow.trainer"

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_VISIBILITY_TIMEOUT = 24 * 3600.0
DEFAULT_RESTORE_INTERVAL = 10.0
# Results and job ledgers outlive the longest run that might still ask about them.
RESULT_EXPIRES = 7 * 24 * 3600

# One Redis hash per job: when it was submitted and how often it was delivered, trained and completed.
LEDGER_SUBMITTED = "submitted"
LEDGER_DELIVERIES = "deliveries"
LEDGER_TRAININGS = "trainings"
LEDGER_COMPLETIONS = "completions"


def ledger_key(job_id: str) -> str:
    return f"raftflow:trainer:job:{job_id}"


def celery_config(
    redis_url: str,
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
    restore_interval: float = DEFAULT_RESTORE_INTERVAL,
) -> dict[str, Any]:
    """The settings both sides use. ``restore_interval`` is how often a worker looks for messages
    past their visibility timeout (kombu scans every interval x throttle seconds; throttle 1 makes the
    interval the only knob)."""
    return {
        "broker_url": redis_url,
        "result_backend": redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "result_extended": True,
        "result_expires": RESULT_EXPIRES,
        "task_default_queue": QUEUE,
        "task_routes": {name: {"queue": QUEUE} for name in TASK_NAMES.values()},
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": restore_interval,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout},
        "redis_socket_connect_timeout": 5,
        "redis_socket_timeout": 30,
    }


def make_celery_app(main: str, redis_url: str, **options: float) -> Celery:
    """A Celery app with :func:`celery_config`; ``options`` are its keyword arguments."""
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(redis_url, **options))
    return app
