"""``python -m services.trainer.rank SPEC``: one process of a multi-process job, as accelerate starts it.

Every rank runs the same training function as a one-process job (the Trainer shards the batches and
joins the ranks itself, from torchrun's environment); rank 0 alone reports progress and writes the
metrics, and :func:`services.trainer.weights.save_trained` lets only the main process write the
checkpoint. A rank that fails leaves its error in the work dir for the worker to report.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from raftflow.atomic import write_json_atomic
from raftflow.schemas.jobs import JobProgress
from services.trainer.jobs import load_job_data
from services.trainer.launcher import LaunchSpec

PARENT_CHECK_SECONDS = 1.0


def exit_with_launcher() -> None:
    """Kill this rank when its launcher (torchrun's agent) is gone: torchrun starts each rank in a
    session of its own, so a launcher killed outright would otherwise leave ranks holding the device."""
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="launcher-watchdog", daemon=True).start()


def train(spec: LaunchSpec, rank: int) -> dict[str, float]:
    from services.trainer.progress import ProgressReporter
    from services.trainer.runtime import prepare_runtime

    job = spec.training_job()
    data = load_job_data(job)
    settings = spec.trainer_settings()
    runtime = prepare_runtime(settings)
    callbacks = []
    if rank == 0:

        def append(progress: JobProgress) -> None:
            with spec.progress_path.open("a", encoding="utf-8") as lines:
                lines.write(progress.model_dump_json() + "\n")

        callbacks.append(ProgressReporter(job.job_id, append, settings.progress_interval))
    if job.kind == "sft":
        from services.trainer.sft import train_sft

        return train_sft(job, data, Path(spec.staging), runtime, callbacks)
    from services.trainer.reward import train_reward_model

    return train_reward_model(job, data, Path(spec.staging), runtime, callbacks)


def main(argv: list[str]) -> int:
    exit_with_launcher()
    spec = LaunchSpec.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    rank = int(os.environ.get("RANK", "0"))
    try:
        metrics = train(spec, rank)
    except Exception as exc:
        write_json_atomic(spec.error_path(rank), {"type": type(exc).__name__, "message": str(exc)})
        raise
    if rank == 0:
        write_json_atomic(spec.metrics_path, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
