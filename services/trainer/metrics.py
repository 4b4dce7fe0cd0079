"""The numbers a finished job reports, read from the Trainer's own state (no second bookkeeping)."""

from __future__ import annotations

import math

from transformers import Trainer
from transformers.trainer_utils import TrainOutput


def training_metrics(trainer: Trainer, output: TrainOutput, examples: int, dropped: int) -> dict[str, float]:
    """Loss at the first and last log (the learning signal), mean loss, runtime, non-padding tokens
    per second of the training loop itself, steps, epochs and example counts."""
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    runtime = output.metrics.get("train_runtime")
    tokens = trainer.state.num_input_tokens_seen
    metrics = {
        "train_loss": output.training_loss,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_runtime": runtime,
        "train_tokens": tokens,
        "tokens_per_second": tokens / runtime if runtime else None,
        "train_steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "examples": examples,
        "dropped_examples": dropped,
    }
    return finite(metrics)


def finite(values: dict[str, float | int | None]) -> dict[str, float]:
    """Only finite floats: NaN and inf are not JSON, and the result goes through JSON twice."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
