"""``raftflow train sft|reward-model``: validate the data, then queue the job and follow it with a
progress bar, or run it in this process with ``--local``.

Data problems (unreadable file, missing fields, empty dataset) fail here with exit code 2 before
anything is queued or written. The trainer modules are imported only when a command runs, so other
``raftflow`` commands start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any, get_args

from pydantic import ValidationError

from raftflow.conversation import PROMPT_FORMATS
from raftflow.data import DataError
from raftflow.schemas.jobs import LoraOptions, RewardModelJob, SFTJob, TrainingConfig, TrainingJob
from services.trainer.settings import TrainerSettings, trainer_settings

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


@dataclass(frozen=True)
class Flag:
    flag: str
    field: str
    type: type
    choices: tuple[str, ...] | None = None


TRAINING_FLAGS = (
    Flag("--epochs", "epochs", float),
    Flag("--lr", "learning_rate", float),
    Flag("--batch-size", "per_device_batch_size", int),
    Flag("--grad-accum", "gradient_accumulation_steps", int),
    Flag("--max-length", "max_length", int),
    Flag("--seed", "seed", int),
    Flag("--max-steps", "max_steps", int),
    Flag("--warmup-ratio", "warmup_ratio", float),
    Flag(
        "--lr-scheduler", "lr_scheduler_type", str, ("linear", "cosine", "constant", "constant_with_warmup")
    ),
    Flag("--weight-decay", "weight_decay", float),
    Flag("--logging-steps", "logging_steps", int),
)
SWITCHES = ("group_by_length", "gradient_checkpointing")
SFT_FLAGS = (Flag("--loss-on", "loss_on", str, ("response", "all")),)
LORA_FLAGS = (
    Flag("--lora-r", "r", int),
    Flag("--lora-alpha", "alpha", int),
    Flag("--lora-dropout", "dropout", float),
)


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a policy (SFT / RAFT step) or a reward model")
    sub = train.add_subparsers(dest="train_command", required=True)
    for name, spec in (("sft", SFTJob), ("reward-model", RewardModelJob)):
        parser = sub.add_parser(name, help=(spec.__doc__ or "").split("\n")[0], description=spec.__doc__)
        _add_arguments(parser, spec)
        parser.set_defaults(handler=partial(_train, spec))


def _add_arguments(parser: argparse.ArgumentParser, spec: type[TrainingJob]) -> None:
    parser.add_argument("--model", required=True, help="starting checkpoint: a directory or a hub id")
    parser.add_argument("--data", required=True, help="training data (see docs/data.md)")
    parser.add_argument("--out", required=True, help="parent directory; the checkpoint lands in OUT/JOB_ID")
    parser.add_argument("--job-id", help="names the job and its output (default: kind-time-random)")
    parser.add_argument("--local", action="store_true", help="train in this process, without the queue")
    parser.add_argument("--redis-url", help="broker for queued jobs (default: $REDIS_URL)")
    parser.add_argument(
        "--processes",
        type=int,
        help="with --local: train on this many processes with accelerate, e.g. one per GPU (default: "
        "$TRAINER_PROCESSES or 1; queued jobs use the worker's setting)",
    )
    parser.add_argument(
        "--distributed",
        choices=get_args(TrainerSettings.model_fields["distributed"].annotation),
        help="with --local and --processes > 1: how the processes share the work (default: "
        "$TRAINER_DISTRIBUTED or ddp; see docs/trainer.md)",
    )
    parser.add_argument(
        "--prompt-format",
        choices=PROMPT_FORMATS,
        help="how (prompt, response) pairs become model text (default: auto: the checkpoint's recorded "
        "format, else its chat template, else hh; see docs/data.md)",
    )
    parser.add_argument(
        "--retry-seconds", type=float, default=60.0, help="give up when Redis stays unreachable this long"
    )
    hyper = parser.add_argument_group("training (defaults: docs/trainer.md)")
    flags = TRAINING_FLAGS + (SFT_FLAGS if spec is SFTJob else ())
    for flag in flags:
        _add_flag(hyper, flag, TrainingConfig)
    hyper.add_argument(
        "--report-to",
        metavar="TRACKERS",
        help="comma-separated experiment trackers for the loss and learning rate per step: tensorboard, "
        "mlflow, wandb, trackio (offline by default; docs/tracking.md)",
    )
    hyper.add_argument(
        "--group-by-length",
        action="store_true",
        help=TrainingConfig.model_fields["group_by_length"].description,
    )
    hyper.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help=TrainingConfig.model_fields["gradient_checkpointing"].description,
    )
    if spec is RewardModelJob:
        hyper.add_argument(
            "--eval-fraction", type=float, help=RewardModelJob.model_fields["eval_fraction"].description
        )
    lora = parser.add_argument_group("LoRA (on when --lora-r is given)")
    for flag in LORA_FLAGS:
        _add_flag(lora, flag, LoraOptions)
    lora.add_argument("--lora-target-modules", help="comma-separated module names (default: peft's choice)")
    lora.add_argument("--lora-no-merge", action="store_true", help="save the adapter instead of merging it")


def _add_flag(group: argparse._ArgumentGroup, flag: Flag, model: type[Any]) -> None:
    info = model.model_fields[flag.field]
    group.add_argument(
        flag.flag,
        dest=flag.field if model is TrainingConfig else f"lora_{flag.field}",
        type=flag.type,
        choices=flag.choices,
        metavar=None if flag.choices else flag.flag.removeprefix("--").upper().replace("-", "_"),
        help=f"{info.description} (default: {info.default})",
    )


def build_job(spec: type[TrainingJob], args: argparse.Namespace) -> TrainingJob:
    """The job the flags describe; only flags the user gave override the spec's defaults."""
    training: dict[str, Any] = {
        f.field: getattr(args, f.field)
        for f in TRAINING_FLAGS + SFT_FLAGS
        if getattr(args, f.field, None) is not None
    }
    training.update({name: True for name in SWITCHES if getattr(args, name, False)})
    if args.report_to:
        training["report_to"] = [name.strip() for name in args.report_to.split(",") if name.strip()]
    if args.lora_r is not None:
        lora: dict[str, Any] = {
            f.field: getattr(args, f"lora_{f.field}")
            for f in LORA_FLAGS
            if getattr(args, f"lora_{f.field}") is not None
        }
        if args.lora_target_modules:
            lora["target_modules"] = [m.strip() for m in args.lora_target_modules.split(",") if m.strip()]
        lora["merge"] = not args.lora_no_merge
        training["lora"] = lora
    fields: dict[str, Any] = {
        "job_id": args.job_id
        or f"{spec.kind.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
        "model": args.model,
        "data": args.data,
        "output_dir": args.out,
        "training": training,
    }
    if args.prompt_format is not None:
        fields["prompt_format"] = args.prompt_format
    if spec is RewardModelJob and args.eval_fraction is not None:
        fields["eval_fraction"] = args.eval_fraction
    return spec.model_validate(fields)


def _train(spec: type[TrainingJob], args: argparse.Namespace) -> int:
    from raftflow.clients.errors import ComponentUnavailable
    from raftflow.clients.trainer import JobFailed
    from services.trainer.jobs import load_job_data
    from services.trainer.output import OutputConflict

    try:
        job = build_job(spec, args)
        records = load_job_data(job)
    except (ValidationError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{job.kind} job {job.job_id}: {len(records)} records from {job.data}", file=sys.stderr)
    try:
        result = _run_local(job, args) if args.local else _run_queued(job, args.redis_url, args.retry_seconds)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (JobFailed, ComponentUnavailable, OutputConflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        if not args.local:
            print(f"\nstopped following; job {job.job_id} goes on in the worker", file=sys.stderr)
        return 130
    print(json.dumps(result.model_dump(mode="json"), indent=1))
    return 0


def _run_local(job: TrainingJob, args: argparse.Namespace) -> Any:
    """Inline: the Trainer's own tqdm bar shows progress. Its log lines go to stdout, which is kept
    for the result JSON alone, so they are sent to stderr with the bar."""
    from services.trainer.jobs import run_job

    overrides = {
        name: value
        for name, value in (("processes", args.processes), ("distributed", args.distributed))
        if value is not None
    }
    settings = TrainerSettings(**overrides)
    with contextlib.redirect_stdout(sys.stderr):
        return run_job(job, settings=settings)


def _run_queued(job: TrainingJob, redis_url: str | None, retry_seconds: float) -> Any:
    from tqdm import tqdm

    from raftflow.clients.trainer import TrainerClient
    from raftflow.schemas.jobs import JobProgress

    url = redis_url or trainer_settings().redis_url
    with (
        TrainerClient(url, retry_seconds) as client,
        tqdm(total=0, unit="step", desc=job.job_id, file=sys.stderr) as bar,
    ):
        client.submit(job)  # type: ignore[arg-type]

        def show(progress: JobProgress) -> None:
            if progress.total_steps and bar.total != progress.total_steps:
                bar.total = progress.total_steps
            bar.n = progress.step
            bar.set_postfix(state=progress.state, loss=progress.loss, refresh=False)
            bar.refresh()

        return client.wait(job.job_id, on_progress=show)
