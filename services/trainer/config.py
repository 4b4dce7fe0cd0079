"""Trainer configs in the manner of TRL's ``SFTConfig`` / ``RewardConfig``: a job's
:class:`TrainingConfig` plus what the worker decides for the run (where to write, bf16 or not), and the
one place that turns them into ``transformers.TrainingArguments``.

Only the translation lives here; what the fields mean is documented once, on ``TrainingConfig``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from raftflow.schemas.jobs import RewardModelJob, SFTJob, TrainingConfig
from raftflow.tracking import PROJECT

if TYPE_CHECKING:  # transformers imports torch; this module is imported by the worker's parent
    from transformers import TrainingArguments


class RunConfig(TrainingConfig):
    output_dir: str = Field(description="Where the Trainer may write (the job's staging dir).")
    use_cpu: bool = Field(default=True, description="Train on the CPU even when a GPU is visible.")
    bf16: bool = Field(default=False, description="bf16 mixed precision (weights stay fp32).")
    run_name: str | None = Field(default=None, description="The job id: the run's name in the trackers.")
    logging_dir: str | None = Field(default=None, description="TensorBoard event files of the job.")

    def training_arguments(self) -> TrainingArguments:
        """Trainer arguments for a queue job: no intermediate checkpoints (the job's output is the
        final model, published atomically), no external loggers, token counting on for tokens/s."""
        from transformers import TrainingArguments

        return TrainingArguments(
            output_dir=self.output_dir,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps or -1,
            learning_rate=self.learning_rate,
            per_device_train_batch_size=self.per_device_batch_size,
            per_device_eval_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            warmup_ratio=self.warmup_ratio,
            lr_scheduler_type=self.lr_scheduler_type,
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            seed=self.seed,
            logging_steps=self.logging_steps,
            logging_first_step=True,  # the first loss is the "before" in train_loss_first
            gradient_checkpointing=self.gradient_checkpointing,
            # Reentrant checkpointing re-runs each block's forward inside backward, where DDP's hooks
            # see LoRA's parameters a second time: with find_unused_parameters (transformers' default
            # for a peft model) 2 processes failed with "Expected to mark a variable ready only once".
            # Non-reentrant checkpointing has no such replay, and every trainable parameter of a
            # checkpointed model gets its gradient each step (transformers' own rule for a plain
            # model), so DDP need not search for unused ones.
            gradient_checkpointing_kwargs={"use_reentrant": False} if self.gradient_checkpointing else None,
            ddp_find_unused_parameters=False if self.gradient_checkpointing else None,
            group_by_length=self.group_by_length,
            use_cpu=self.use_cpu,
            bf16=self.bf16,
            save_strategy="no",
            eval_strategy="no",
            # The job's own trackers (transformers' integrations); the run name is the job id.
            report_to=list(self.report_to) or "none",
            run_name=self.run_name,
            logging_dir=self.logging_dir,
            project=PROJECT,
            trackio_space_id=None,  # local trackio; transformers' default would deploy to a hub Space
            remove_unused_columns=False,  # our collators read their own columns
            dataloader_pin_memory=not self.use_cpu,
            include_num_input_tokens_seen="non_padding",
            disable_tqdm=False,
        )


class SFTConfig(RunConfig):
    """Config of one SFT run (``loss_on`` and ``max_length`` come from the job)."""

    @classmethod
    def from_job(cls, job: SFTJob, output_dir: str, use_cpu: bool, bf16: bool) -> SFTConfig:
        return cls(
            **job.training.model_dump(),
            **tracking_fields(job),
            output_dir=output_dir,
            use_cpu=use_cpu,
            bf16=bf16,
        )


class RewardConfig(RunConfig):
    """Config of one reward-model run: adds the held-out share for pairwise accuracy."""

    eval_fraction: float = Field(default=0.1, ge=0.0, lt=1.0, description="See RewardModelJob.")

    @classmethod
    def from_job(cls, job: RewardModelJob, output_dir: str, use_cpu: bool, bf16: bool) -> RewardConfig:
        return cls(
            **job.training.model_dump(),
            **tracking_fields(job),
            eval_fraction=job.eval_fraction,
            output_dir=output_dir,
            use_cpu=use_cpu,
            bf16=bf16,
        )


def tracking_fields(job: SFTJob | RewardModelJob) -> dict[str, str]:
    """The job's name in the trackers, and its TensorBoard dir: beside the checkpoints
    (``output_dir/tensorboard/JOB_ID``), not inside the checkpoint the generator loads."""
    return {"run_name": job.job_id, "logging_dir": str(Path(job.output_dir) / "tensorboard" / job.job_id)}


def close_tracker_runs(report_to: list[str]) -> None:
    """End the job's W&B run. transformers' other integrations close theirs at the end of training,
    but its W&B callback leaves the run open for more logging: in a worker child that lives on, the
    run (and its offline file) would stay unfinished until the next job."""
    if "wandb" in report_to:
        import wandb

        if wandb.run is not None:
            wandb.finish()
        # wandb keeps its settings (WANDB_DIR included) in a process-wide singleton: without a teardown
        # the next job in this worker child would write into this job's directory.
        wandb.teardown()
