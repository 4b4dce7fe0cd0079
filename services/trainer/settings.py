"""Worker settings: ``TRAINER_*`` environment variables (and the shared ``RAFTFLOW_*`` and ``REDIS_URL``).

Documented with their defaults in docs/trainer.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from raftflow.celery_config import DEFAULT_REDIS_URL, DEFAULT_RESTORE_INTERVAL, DEFAULT_VISIBILITY_TIMEOUT
from raftflow.settings import CommonSettings


class TrainerSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINER_", extra="ignore", populate_by_name=True)

    path_roots: list[Path] = Field(
        default_factory=list,
        description="Directories a job's model, data and output_dir must resolve inside (after '..' and "
        "symlinks); a model that is a hub id (owner/name, no local file of that name) stays allowed. A job "
        "outside fails before anything is read or written. Empty: any path (local use; a warning at "
        "start-up). Env: a JSON list.",
    )
    redis_url: str = Field(
        default=DEFAULT_REDIS_URL,
        validation_alias="REDIS_URL",
        description="Broker and result backend; shared with the orchestrator, so read un-prefixed.",
    )
    visibility_timeout: float = Field(
        default=DEFAULT_VISIBILITY_TIMEOUT,
        gt=0,
        description="Seconds before Redis redelivers an unacknowledged job. Must exceed the longest job, or "
        "long training restarts in a loop.",
    )
    restore_interval: float = Field(
        default=DEFAULT_RESTORE_INTERVAL,
        gt=0,
        description="Seconds between the worker's scans for jobs past the visibility timeout (those of a "
        "worker that died).",
    )
    max_deliveries: int = Field(
        default=3,
        ge=1,
        description="A job delivered more often than this fails instead of training again: the previous "
        "workers died running it (out of memory, killed), and retrying forever would loop.",
    )
    lock_ttl: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a job's Redis lock outlives a dead worker; a live worker renews it every "
        "third of that. A duplicate delivery waits on the lock, then returns the finished result.",
    )
    progress_interval: float = Field(
        default=1.0, ge=0, description="Minimum seconds between PROGRESS updates written to Redis."
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        description="Jobs at once per worker. Keep 1 per GPU and run one worker per GPU "
        "(CUDA_VISIBLE_DEVICES).",
    )
    max_tasks_per_child: int = Field(
        default=50,
        ge=1,
        description="Jobs per worker child before it is replaced. A child that stays keeps torch, "
        "transformers and its CUDA context warm, so a RAFT iteration's job starts training at once instead "
        "of paying seconds of imports (the replacement child would still be importing when the next "
        "iteration's job arrives); the bound recycles the child now and then to cap slow leaks. 1: a "
        "fresh process per job (strict isolation, ~3-5 s per job).",
    )
    preload: bool = Field(
        default=True,
        description="Import torch and transformers in each new worker child while it waits for a job "
        "(after the fork; CUDA untouched), saving seconds per job.",
    )
    processes: int = Field(
        default=1,
        ge=1,
        description="Processes per training job. Above 1 the worker launches the job with accelerate "
        "(torchrun underneath): one process per GPU, or on CPU several processes sharing the cores over "
        "gloo; rank 0 reports progress and writes the one checkpoint. 1: the job trains in the worker "
        "child itself.",
    )
    distributed: Literal["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"] = Field(
        default="ddp",
        description="How several processes share the work: DDP (each holds the whole model), FSDP or "
        "DeepSpeed ZeRO-2/3 (states sharded; GPUs only, as accelerate launches them). Ignored when "
        "processes is 1 or accelerate_config names a file.",
    )
    accelerate_config: Path | None = Field(
        default=None,
        description="An accelerate config file (`accelerate config`) used as is for multi-process jobs, "
        "instead of the launch options raftflow derives from processes and distributed. For setups those "
        "do not cover: DeepSpeed offload, FSDP options, several nodes.",
    )
    launch_poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between the worker's checks of a multi-process job (progress lines, exit).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics (jobs by outcome, job duration, tokens, tokens/s) on this "
        "port of TRAINER_HOST, from the worker's parent process. Unset: no endpoint.",
    )


@cache
def trainer_settings() -> TrainerSettings:
    """The worker's settings, read from the environment once per process: every module of the worker
    asks here instead of building its own (a job that needs other values is given its own instance)."""
    return TrainerSettings()
