"""Run one training job on several processes with accelerate (torchrun underneath), from the worker.

The worker child stays the job's owner: it stages the output, launches ``accelerate launch -m
services.trainer.rank`` in a session of its own, forwards rank 0's progress lines to Redis while the
ranks train, and publishes the checkpoint rank 0 wrote once every rank has exited cleanly. Nothing
here imports torch: the launch is a plain subprocess.

No orphans hold a device after the worker goes. A cancelled or failing job terminates the launcher's
process group (torchrun passes SIGTERM on to the ranks, SIGKILL after a grace period); a worker child
killed outright takes the launcher with it through ``PR_SET_PDEATHSIG``; and each rank exits on its
own when its launcher disappears (see :mod:`services.trainer.rank`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from raftflow.data import DataError
from raftflow.schemas.jobs import JobProgress, RewardModelJob, SFTJob, TrainingJob
from services.trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

SHARDED = {"fsdp", "deepspeed_zero3"}
"""Engines that shard the parameters themselves: a LoRA merge would need the whole model on one rank."""

STDERR_FD = 2
TERMINATE_GRACE_SECONDS = 15.0
"""How long a launcher may take to stop its ranks after SIGTERM before the group is killed."""


class LaunchSpec(BaseModel):
    """What each rank needs, written to a file the launch command names (argv stays short)."""

    kind: str
    job: dict[str, object]
    staging: str = Field(description="The job's staging dir: rank 0 saves the checkpoint here.")
    work_dir: str = Field(description="Progress lines, rank 0's metrics and any rank's error go here.")
    settings: dict[str, object] = Field(description="The worker's TrainerSettings, as the ranks use them.")

    def trainer_settings(self) -> TrainerSettings:
        return TrainerSettings.model_validate(self.settings)

    def training_job(self) -> TrainingJob:
        spec = SFTJob if self.kind == SFTJob.kind else RewardModelJob
        return spec.model_validate(self.job)

    @property
    def progress_path(self) -> Path:
        return Path(self.work_dir) / "progress.jsonl"

    @property
    def metrics_path(self) -> Path:
        return Path(self.work_dir) / "metrics.json"

    def error_path(self, rank: int) -> Path:
        return Path(self.work_dir) / f"error-rank{rank}.json"


class TrainingProcessesFailed(RuntimeError):
    """The job's training processes exited with an error (the message names the rank and why)."""


def check_supported(job: TrainingJob, settings: TrainerSettings) -> None:
    """Refuse, before launching, a combination the save path cannot honour."""
    lora = job.training.lora
    if settings.accelerate_config is None and settings.distributed in SHARDED and lora is not None:
        raise DataError(
            f"training.lora: LoRA jobs cannot run with TRAINER_DISTRIBUTED={settings.distributed} "
            "(parameters sharded across ranks cannot be merged or saved as one adapter here); "
            "use ddp or deepspeed_zero2"
        )


def launch_command(settings: TrainerSettings, spec_path: Path) -> list[str]:
    """``accelerate launch`` for the worker's settings. On a machine without GPUs accelerate's
    ``--multi_gpu`` still starts torchrun, and the Trainer (use_cpu) joins the ranks over gloo."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if settings.accelerate_config is not None:
        command += ["--config_file", str(settings.accelerate_config)]
    else:
        command += [
            "--num_machines", "1",
            "--num_processes", str(settings.processes),
            "--main_process_port", "0",  # a free port: several workers may share a host
            "--dynamo_backend", "no",
            "--mixed_precision", "no",  # the Trainer's bf16 setting decides (it sets accelerate's env)
        ]  # fmt: skip
        command += _engine_options(settings.distributed)
    return [*command, "--module", "services.trainer.rank", str(spec_path)]


def _engine_options(distributed: str) -> list[str]:
    if distributed == "ddp":
        return ["--multi_gpu"]
    if distributed == "fsdp":
        return [
            "--use_fsdp",
            "--fsdp_version", "2",
            "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
            "--fsdp_state_dict_type", "FULL_STATE_DICT",
        ]  # fmt: skip
    stage = distributed.removeprefix("deepspeed_zero")
    # ZeRO-3 saves gather the sharded weights into one 16-bit state dict on rank 0.
    gather = ["--zero3_save_16bit_model", "true"] if stage == "3" else []
    return ["--use_deepspeed", "--zero_stage", stage, *gather]


def train_in_process_group(
    job: TrainingJob,
    staging: Path,
    settings: TrainerSettings,
    progress_callback: Callable[[JobProgress], None] | None,
) -> dict[str, float]:
    """Train ``job`` on ``settings.processes`` processes into ``staging``; returns rank 0's metrics.
    Raises :class:`DataError` when a rank rejected the data (as the one-process path does) and
    :class:`TrainingProcessesFailed` for anything else."""
    check_supported(job, settings)
    with tempfile.TemporaryDirectory(prefix=f"raftflow-launch-{job.job_id}-") as work_dir:
        spec = LaunchSpec(
            kind=job.kind,
            job=job.model_dump(mode="json"),
            staging=str(staging),
            work_dir=work_dir,
            settings=settings.model_dump(mode="json"),
        )
        spec_path = Path(work_dir) / "spec.json"
        spec_path.write_text(spec.model_dump_json(), encoding="utf-8")
        command = launch_command(settings, spec_path)
        log.info("job %s: launching %d training processes: %s", job.job_id, settings.processes, command)
        # The ranks' output goes to file descriptor 2, the worker log (stdout may carry a CLI's result;
        # sys.stderr may be a Python-level redirect without a descriptor).
        process = subprocess.Popen(
            command, stdout=STDERR_FD, start_new_session=True, preexec_fn=_die_with_parent
        )
        try:
            _follow(process, spec, progress_callback, settings.launch_poll_interval)
        finally:
            _stop(process)
        if process.returncode != 0:
            raise _failure(spec, settings.processes, process.returncode)
        return json.loads(spec.metrics_path.read_text(encoding="utf-8"))


def _follow(
    process: subprocess.Popen[bytes],
    spec: LaunchSpec,
    progress_callback: Callable[[JobProgress], None] | None,
    poll_interval: float,
) -> None:
    """Forward progress lines until the launcher exits (then once more, for the last lines)."""
    offset = 0
    while True:
        finished = process.poll() is not None
        offset = _forward_progress(spec.progress_path, offset, progress_callback)
        if finished:
            return
        time.sleep(poll_interval)


def _forward_progress(path: Path, offset: int, callback: Callable[[JobProgress], None] | None) -> int:
    if not path.exists():
        return offset
    with path.open("rb") as lines:
        lines.seek(offset)
        for line in lines:
            if not line.endswith(b"\n"):  # rank 0 is still writing it: read it next time
                break
            offset += len(line)
            if callback is not None:
                callback(JobProgress.model_validate_json(line))
    return offset


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Make sure the launcher's process group is gone: SIGTERM (torchrun stops its ranks), then
    SIGKILL after the grace period. A no-op when it already exited."""
    if process.poll() is not None:
        return
    log.warning("stopping training processes (launcher pid %d)", process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(TERMINATE_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _failure(spec: LaunchSpec, processes: int, returncode: int) -> Exception:
    for rank in range(processes):
        path = spec.error_path(rank)
        if path.exists():
            error = json.loads(path.read_text(encoding="utf-8"))
            if error["type"] == "DataError":
                return DataError(error["message"])
            return TrainingProcessesFailed(f"rank {rank}: {error['type']}: {error['message']}")
    return TrainingProcessesFailed(
        f"the training processes exited with code {returncode} before reporting an error "
        "(killed? out of memory?); see the worker log"
    )


def _die_with_parent() -> None:
    """In the launcher, before exec: SIGTERM it when the worker child that started it dies, even by
    SIGKILL (Linux; elsewhere the ranks' own watchdog still stops them)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
