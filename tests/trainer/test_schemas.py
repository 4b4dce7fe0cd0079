"""Job specs: what is accepted, what is refused, and that they survive the JSON trip through the queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from raftflow.schemas.jobs import JobResult, LoraOptions, RewardModelJob, SFTJob, TrainingConfig


def test_defaults_and_json_round_trip(tmp_path: Path) -> None:
    job = SFTJob(job_id="raft-0.it_1", model="m", data="d.json", output_dir=str(tmp_path))
    assert job.training == TrainingConfig()
    assert (job.training.epochs, job.training.loss_on, job.training.max_steps, job.training.lora) == (
        1.0,
        "response",
        None,
        None,
    )
    assert job.kind == "sft" and RewardModelJob.kind == "reward_model"
    assert job.checkpoint_path == tmp_path.resolve() / "raft-0.it_1"
    payload = job.model_dump(mode="json")
    assert SFTJob.model_validate(payload) == job

    tuned = RewardModelJob(
        job_id="rm",
        model="m",
        data="p.jsonl",
        output_dir="out",
        eval_fraction=0.25,
        training={"learning_rate": 1e-3, "lora": {"r": 4, "target_modules": ["c_attn"]}},
    )
    assert tuned.training.lora == LoraOptions(r=4, target_modules=["c_attn"])
    assert RewardModelJob.model_validate_json(tuned.model_dump_json()) == tuned


@pytest.mark.parametrize("job_id", ["", "../escape", "a/b", "has space", "x" * 129, "naïve"])
def test_job_ids_that_could_escape_or_break_paths_are_refused(job_id: str) -> None:
    with pytest.raises(ValidationError, match="job_id"):
        SFTJob(job_id=job_id, model="m", data="d", output_dir="o")


@pytest.mark.parametrize(
    "training",
    [
        {"epochs": 0},
        {"learning_rate": -1},
        {"per_device_batch_size": 0},
        {"loss_on": "prompt"},
        {"max_steps": 0},
        {"lora": {"r": 0}},
        {"learning_rte": 1e-3},  # typo: extra fields are refused, not silently ignored
    ],
)
def test_bad_hyper_parameters_are_refused(training: dict) -> None:
    with pytest.raises(ValidationError):
        SFTJob(job_id="j", model="m", data="d", output_dir="o", training=training)


def test_eval_fraction_bounds_and_result_shape() -> None:
    with pytest.raises(ValidationError):
        RewardModelJob(job_id="j", model="m", data="d", output_dir="o", eval_fraction=1.0)
    result = JobResult(job_id="j", kind="sft", checkpoint="/c", metrics={"train_loss": 1.5})
    assert JobResult.model_validate_json(result.model_dump_json()) == result
