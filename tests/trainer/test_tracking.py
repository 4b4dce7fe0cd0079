"""A training job's loss and learning rate in every tracker (transformers' own integrations), read
back with each tracker's library; offline, under the job's output_dir unless the user set locations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftflow.schemas.jobs import SFTJob, TrainingConfig
from services.trainer.jobs import run_sft
from tests.tracker_readers import mlflow_metric, tensorboard_scalars, trackio_logs, wandb_history


def test_a_job_logs_loss_and_learning_rate_per_step_to_each_tracker(
    tiny_models, sft_data: Path, tmp_path: Path, clean_tracker_env: None
) -> None:
    job = SFTJob(
        job_id="tracked-sft",
        model=str(tiny_models["policy"]),
        data=str(sft_data),
        output_dir=str(tmp_path),
        training=TrainingConfig(
            max_steps=6,
            learning_rate=1e-3,
            per_device_batch_size=4,
            max_length=48,
            logging_steps=2,
            report_to=["tensorboard", "mlflow", "wandb", "trackio"],
        ),
    )
    result = run_sft(job)
    assert result.metrics["train_steps"] == 6

    # Logged at the first step and every 2nd: steps 1, 2, 4, 6; the same values in every tracker.
    losses = tensorboard_scalars(tmp_path / "tensorboard" / job.job_id, "train/loss")
    assert sorted(losses) == [1, 2, 4, 6]
    assert losses[1] == pytest.approx(result.metrics["train_loss_first"], abs=1e-3)
    assert losses[6] == pytest.approx(result.metrics["train_loss_last"], abs=1e-3)
    assert mlflow_metric(
        f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}", job.job_id, "loss"
    ) == pytest.approx(losses, abs=1e-3)
    rates = mlflow_metric(f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}", job.job_id, "learning_rate")
    assert rates[1] == pytest.approx(1e-3) and rates[6] < rates[1]  # linear decay
    wandb_losses = {
        row["train/global_step"]: row["train/loss"]
        for row in wandb_history(tmp_path, job.job_id)
        if "train/loss" in row
    }
    assert wandb_losses == pytest.approx(losses, abs=1e-3)
    trackio = trackio_logs(Path(os.environ["TRACKIO_DIR"]), "raftflow", job.job_id)
    assert {
        row["train/global_step"]: row["train/loss"] for row in trackio if "train/loss" in row
    } == pytest.approx(losses, abs=1e-3)
    # The checkpoint itself holds no tracker files.
    assert {p.name for p in Path(result.checkpoint).iterdir()}.isdisjoint(
        {"runs", "wandb", "mlruns", "tensorboard"}
    )
