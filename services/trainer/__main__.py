"""``python -m services.trainer [celery worker options]``: the trainer worker with safe defaults.

prefork with one job at a time in a child process that is reused for up to ``TRAINER_MAX_TASKS_PER_CHILD``
jobs: CUDA is first initialised in the child, never in the parent that forks, and a warm child starts
the next RAFT iteration's job without re-importing torch. Extra arguments go to ``celery worker`` and
override these defaults (the last value wins).
"""

from __future__ import annotations

import sys

from raftflow.celery_config import QUEUE
from services.trainer import telemetry
from services.trainer.app import app
from services.trainer.settings import TrainerSettings, trainer_settings


def worker_argv(settings: TrainerSettings, extra: list[str]) -> list[str]:
    return [
        "worker",
        "--pool=prefork",
        f"--concurrency={settings.concurrency}",
        f"--max-tasks-per-child={settings.max_tasks_per_child}",
        f"--queues={QUEUE}",
        f"--loglevel={settings.log_level.upper()}",
        # Gossip and mingle sync state between workers for remote control; jobs need neither, and
        # both slow start-up.
        "--without-gossip",
        "--without-mingle",
        *extra,
    ]


def main(argv: list[str] | None = None) -> None:
    settings = trainer_settings()
    telemetry.serve(settings)  # before the children fork: they inherit the metrics directory
    app.worker_main(worker_argv(settings, list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
