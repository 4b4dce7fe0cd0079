"""Run a training job end to end, with or without a queue: the Celery tasks, ``raftflow train
--local`` and the benchmark all call these.

Order matters for the guarantees: a finished output is returned before anything else (idempotent
redelivery); the data is validated before anything is written (bad data leaves no trace); stale temp
dirs are cleared only then; the model trains into a temp dir that is renamed into place with its
completion marker. torch is imported only once training really starts, inside these functions (or,
in a worker child, ahead of time by :mod:`services.trainer.preload`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from raftflow.data import DataError, PreferencePair, PromptResponse, load_preferences, load_sft_examples
from raftflow.schemas.jobs import JobProgress, JobResult, RewardModelJob, SFTJob, TrainingJob
from raftflow.tracking import tracker_environment
from services.trainer.output import JobOutput
from services.trainer.preload import wait_for_preload
from services.trainer.settings import TrainerSettings, trainer_settings

log = logging.getLogger(__name__)

ProgressCallback = Callable[[JobProgress], None]
# (job, data, staging dir, runtime, trainer callbacks) -> metrics
TrainFn = Callable[[Any, Sequence[Any], Path, Any, Sequence[Any]], dict[str, float]]


def load_job_data(job: TrainingJob) -> list[PromptResponse] | list[PreferencePair]:
    """The job's data, validated; :class:`DataError` names the problem. The CLI calls this before it
    submits, the worker before it writes anything."""
    if isinstance(job, SFTJob):
        return load_sft_examples(job.data)
    if isinstance(job, RewardModelJob):
        pairs = load_preferences(job.data)
        if job.eval_fraction > 0 and len(pairs) < 2:
            raise DataError(f"{job.data}: {len(pairs)} pair(s); holding out an eval share needs at least 2")
        return pairs
    raise TypeError(f"not a training job: {type(job).__name__}")


def run_sft(
    job: SFTJob,
    progress_callback: ProgressCallback | None = None,
    on_training_start: Callable[[], None] | None = None,
    settings: TrainerSettings | None = None,
) -> JobResult:
    """Fine-tune a causal LM; returns the stored result instead when the job already finished.

    ``on_training_start`` runs once the job is known to need training, before any output is written
    (the worker counts trainings with it and may refuse by raising)."""
    return _run(job, _train_sft, progress_callback, on_training_start, settings)


def run_reward_model(
    job: RewardModelJob,
    progress_callback: ProgressCallback | None = None,
    on_training_start: Callable[[], None] | None = None,
    settings: TrainerSettings | None = None,
) -> JobResult:
    """Train a Bradley-Terry reward model; same contract as :func:`run_sft`."""
    return _run(job, _train_reward_model, progress_callback, on_training_start, settings)


def run_job(
    job: TrainingJob,
    progress_callback: ProgressCallback | None = None,
    on_training_start: Callable[[], None] | None = None,
    settings: TrainerSettings | None = None,
) -> JobResult:
    if isinstance(job, SFTJob):
        return run_sft(job, progress_callback, on_training_start, settings)
    if isinstance(job, RewardModelJob):
        return run_reward_model(job, progress_callback, on_training_start, settings)
    raise TypeError(f"not a training job: {type(job).__name__}")


# The training modules import torch: only a job that really trains loads them (a finished job
# returns its stored result in milliseconds).
def _train_sft(*args: Any) -> dict[str, float]:
    from services.trainer.sft import train_sft

    return train_sft(*args)


def _train_reward_model(*args: Any) -> dict[str, float]:
    from services.trainer.reward import train_reward_model

    return train_reward_model(*args)


def _run(
    job: TrainingJob,
    train: TrainFn,
    progress_callback: ProgressCallback | None,
    on_training_start: Callable[[], None] | None,
    settings: TrainerSettings | None,
) -> JobResult:
    settings = settings or trainer_settings()
    output = JobOutput(job)
    stored = output.stored_result()
    if stored is not None:
        log.info("job %s already finished: returning its stored result", job.job_id)
        return stored
    data = load_job_data(job)
    output.remove_stale()
    if on_training_start is not None:
        on_training_start()
    log.info("job %s: training %s on %d records from %s", job.job_id, job.model, len(data), job.data)

    # The trackers' own env settings, defaulted (offline, under output_dir) for this job only.
    tracking = (
        tracker_environment(Path(job.output_dir)) if job.training.report_to else contextlib.nullcontext()
    )
    with tracking:
        if settings.processes > 1:
            return _run_in_process_group(job, output, settings, progress_callback)
        return _run_here(job, data, output, train, progress_callback, settings)


def _run_here(
    job: TrainingJob,
    data: Sequence[Any],
    output: JobOutput,
    train: TrainFn,
    progress_callback: ProgressCallback | None,
    settings: TrainerSettings,
) -> JobResult:
    """Train in this process."""
    wait_for_preload()
    from services.trainer.progress import ProgressReporter
    from services.trainer.runtime import prepare_runtime, release_device_memory

    runtime = prepare_runtime(settings)
    callbacks = (
        [ProgressReporter(job.job_id, progress_callback, settings.progress_interval)]
        if progress_callback is not None
        else []
    )
    try:
        with output.staging() as staging:
            metrics = train(job, data, staging, runtime, callbacks)
            result = JobResult(
                job_id=job.job_id, kind=job.kind, checkpoint=str(output.final), metrics=metrics
            )
            return output.commit(staging, result)
    finally:
        release_device_memory(runtime)


def _run_in_process_group(
    job: TrainingJob, output: JobOutput, settings: TrainerSettings, progress_callback: ProgressCallback | None
) -> JobResult:
    """The same job on ``settings.processes`` processes (accelerate); published the same way."""
    from services.trainer.launcher import train_in_process_group

    with output.staging() as staging:
        metrics = train_in_process_group(job, staging, settings, progress_callback)
        result = JobResult(job_id=job.job_id, kind=job.kind, checkpoint=str(output.final), metrics=metrics)
        return output.commit(staging, result)
