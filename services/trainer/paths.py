"""Confine a queued job's paths to ``TRAINER_PATH_ROOTS``: the worker's trust boundary is the queue.

Whoever can push to Redis can hand the worker any job, and the worker reads ``model`` and ``data`` and
writes under ``output_dir`` with its own permissions. So before anything is read or written each path
is resolved (``..``, symlinks) and must lie inside a root, and the job continues with the resolved
paths, so a symlink swapped in after the check redirects nothing. A ``model`` that is a hub id stays
allowed (it is downloaded into the hub cache); a ``model`` that is a LoRA adapter directory has its
base model (``adapter_config.json``) checked the same way, since loading the adapter loads the base.
The job id names the checkpoint directory under ``output_dir``, so it must not step out of it either
(``.`` or ``..``), roots or not.

Kept free of torch: the worker's parent process imports it through :mod:`services.trainer.tasks`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from raftflow.paths import PathNotAllowed, confine, confine_model_dir
from raftflow.schemas.jobs import TrainingJob
from services.trainer.settings import TrainerSettings, trainer_settings

log = logging.getLogger(__name__)

# The job fields that are paths, and whether a hub id may stand in for the path.
PATH_FIELDS: dict[str, bool] = {"model": True, "data": False, "output_dir": False}


class JobPathNotAllowed(ValueError):
    """A job path outside TRAINER_PATH_ROOTS. A plain message naming the field: the exception crosses
    Celery's JSON result backend, where only the message survives."""


def confine_job(job: TrainingJob, settings: TrainerSettings) -> TrainingJob:
    """``job`` with its paths resolved inside the roots, or :class:`JobPathNotAllowed`."""
    if job.job_id in (".", ".."):
        raise JobPathNotAllowed(
            f"job {job.job_id!r}: job_id {job.job_id!r} would name output_dir itself or its parent, "
            "not a checkpoint directory inside it"
        )
    if not settings.path_roots:
        return job
    updates: dict[str, Any] = {}
    for field, hub_ids in PATH_FIELDS.items():
        value = getattr(job, field)
        try:
            updates[field] = confine(value, settings.path_roots, hub_ids=hub_ids)
            if field == "model":  # a LoRA adapter's base model is loaded with it: the same rule
                confine_model_dir(updates[field], settings.path_roots, hub_ids=hub_ids)
        except PathNotAllowed as exc:
            raise JobPathNotAllowed(
                f"job {job.job_id}: {field} {exc} (setting TRAINER_PATH_ROOTS); nothing was read or written"
            ) from None
    return job.model_copy(update=updates)


@worker_ready.connect
def _warn_if_unconfined(**_: Any) -> None:
    """One warning when the worker starts without roots: fine locally, not on a shared queue."""
    if not trainer_settings().path_roots:
        log.warning(
            "TRAINER_PATH_ROOTS is not set: jobs from the queue may read and write any path this worker "
            "can (model, data, output_dir). Set it to the data directories on a shared deployment."
        )
