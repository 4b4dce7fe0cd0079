"""The Celery app of the trainer worker (``celery -A services.trainer.app worker``).

Importing this module must stay light: the worker's parent process imports it before forking the
children that run jobs, and torch imported (or CUDA initialised) in the parent breaks the children.
"""

from __future__ import annotations

from raftflow.celery_config import make_celery_app
from services.trainer import orphans, preload  # noqa: F401  (signals: dead workers' jobs, child warm-up)
from services.trainer.settings import trainer_settings

_settings = trainer_settings()

app = make_celery_app(
    "raftflow.trainer",
    _settings.redis_url,
    visibility_timeout=_settings.visibility_timeout,
    restore_interval=_settings.restore_interval,
)
app.conf.update(
    include=["services.trainer.tasks"],
    # Let the job's tqdm bar write to the worker's stderr (its log) as a bar, rather than as one
    # WARNING log record per refresh.
    worker_redirect_stdouts=False,
    # A job that finishes while Redis restarts keeps retrying to store its result (backoff up to 10 s)
    # until Redis is back, instead of failing a finished training over a lost connection. Worker
    # only: clients bound their own retries (TrainerClient's retry_seconds), never this forever.
    result_backend_always_retry=True,
)
