"""Report training progress from inside transformers' Trainer loop.

A callback rather than a custom loop: the Trainer keeps its own tqdm bar (which lands in the worker
log) and this adds step, total steps, latest loss and ETA for whoever follows the job, throttled so a
fast job does not write to Redis on every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from raftflow.schemas.jobs import JobProgress

ProgressFn = Callable[[JobProgress], None]


class ProgressReporter(TrainerCallback):
    def __init__(self, job_id: str, report: ProgressFn, min_interval: float = 1.0) -> None:
        self.job_id = job_id
        self.report = report
        self.min_interval = min_interval
        self.started = 0.0
        self.last_sent = float("-inf")
        self.loss: float | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self.started = time.monotonic()
        self._send(state, force=True)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self._send(state)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self._send(state, force=True)

    def _send(self, state: TrainerState, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_sent < self.min_interval:
            return
        self.last_sent = now
        step, total = state.global_step, state.max_steps
        eta = (now - self.started) / step * (total - step) if step else None
        self.report(
            JobProgress(
                job_id=self.job_id,
                state="PROGRESS",
                step=step,
                total_steps=total,
                loss=self.loss,
                eta_seconds=eta,
            )
        )
