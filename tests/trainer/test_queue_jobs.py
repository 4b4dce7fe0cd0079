"""Each job type end to end through real Redis and a real worker subprocess on the tiny models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis

from raftflow.celery_config import LEDGER_DELIVERIES, TASK_SFT, ledger_key, make_celery_app
from raftflow.clients.trainer import JobFailed, TrainerClient
from raftflow.data import load_pairs
from raftflow.schemas.jobs import COMPLETION_MARKER, JobProgress, JobResult, SFTJob, TrainingConfig
from raftflow_cli.commands import main

from .conftest import pairwise_accuracy, preference_pairs, response_loss

FAST = {"epochs": 3, "learning_rate": 1e-3, "per_device_batch_size": 8, "max_length": 64, "logging_steps": 1}


def ledger(redis_url: str, job_id: str) -> dict[str, str]:
    raw = redis.Redis.from_url(redis_url).hgetall(ledger_key(job_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_sft_job_learns_reports_progress_and_is_idempotent(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient, redis_url: str
) -> None:
    start_worker()
    job = SFTJob(
        job_id="sft-e2e",
        model=str(tiny_models["policy"]),
        data=str(sft_data),
        output_dir=str(tmp_path / "ckpt"),
        training=TrainingConfig(**FAST),
    )
    assert trainer_client.submit(job) == "sft-e2e"
    seen: list[JobProgress] = []
    result = trainer_client.wait(job.job_id, timeout=120, poll_interval=0.1, on_progress=seen.append)

    assert result.kind == "sft" and result.checkpoint == str(tmp_path / "ckpt" / "sft-e2e")
    assert result.metrics["train_steps"] == 12 and result.metrics["examples"] == 32
    assert result.metrics["train_loss_last"] < result.metrics["train_loss_first"]
    assert result.metrics["tokens_per_second"] > 0
    progress = [p for p in seen if p.state == "PROGRESS"]
    assert progress and all(p.total_steps == 12 for p in progress)
    assert any(p.loss is not None and p.eta_seconds is not None for p in progress)
    assert seen[-1].state == "SUCCESS" and seen[-1].step == 12

    examples = load_pairs(sft_data)
    before, after = response_loss(tiny_models["policy"], examples), response_loss(result.checkpoint, examples)
    assert after < 0.8 * before, (before, after)
    marker = JobResult.model_validate_json((Path(result.checkpoint) / COMPLETION_MARKER).read_text())
    assert marker == result

    # Resubmitting a finished job returns its stored result without training again.
    trainer_client.submit(job)
    assert trainer_client.wait(job.job_id, timeout=60, poll_interval=0.1) == result
    assert ledger(redis_url, job.job_id)["trainings"] == "1"
    assert ledger(redis_url, job.job_id)["completions"] == "1"


def test_reward_model_job_through_the_cli_ranks_held_out_pairs(
    tiny_models, preference_data: Path, tmp_path: Path, start_worker, redis_url: str, capsys
) -> None:
    start_worker()
    out = tmp_path / "rm"
    args = ["--model", str(tiny_models["policy"]), "--data", str(preference_data), "--out", str(out)]
    args += ["--job-id", "rm-e2e", "--redis-url", redis_url, "--eval-fraction", "0.25"]
    args += ["--epochs", "3", "--lr", "1e-3", "--batch-size", "8", "--max-length", "64"]
    assert main(["train", "reward-model", *args]) == 0
    captured = capsys.readouterr()
    result = JobResult.model_validate(json.loads(captured.out))
    assert "rm-e2e" in captured.err  # the progress bar

    assert result.kind == "reward_model" and result.metrics["eval_pairs"] == 16
    assert result.metrics["eval_accuracy"] >= 0.8
    assert result.metrics["train_loss_last"] < result.metrics["train_loss_first"]
    # Pairs never seen in training, scored by the checkpoint loaded the way the rewarder loads it
    # (one output, pad id set): the causal LM it started from became a working reward model.
    assert pairwise_accuracy(result.checkpoint, preference_pairs(40, seed=99)) >= 0.8


def test_bad_data_fails_with_the_message_and_writes_nothing(
    tiny_models, tmp_path: Path, start_worker, trainer_client: TrainerClient, redis_url: str, capsys
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response": "r"}\n{"prompt": "only a prompt"}\n')
    out = tmp_path / "out"
    message = "record 1 (line 2): missing field 'response'"

    # The CLI refuses before queueing anything.
    args = ["train", "sft", "--model", str(tiny_models["policy"]), "--data", str(bad), "--out", str(out)]
    assert main([*args, "--redis-url", redis_url, "--job-id", "cli-bad"]) == 2
    assert message in capsys.readouterr().err
    assert trainer_client.progress("cli-bad").state == "PENDING"
    assert redis.Redis.from_url(redis_url).llen("raftflow.trainer") == 0

    # A job that reaches the worker anyway fails with the same message.
    start_worker()
    job = SFTJob(job_id="bad", model=str(tiny_models["policy"]), data=str(bad), output_dir=str(out))
    trainer_client.submit(job)
    with pytest.raises(JobFailed, match=re.escape(message)) as info:
        trainer_client.wait("bad", timeout=60, poll_interval=0.1)
    assert "DataError" in info.value.message
    assert not out.exists() or list(out.iterdir()) == []


def test_a_job_delivered_too_often_fails_instead_of_looping(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient, redis_url: str
) -> None:
    """What the worker sees after its predecessors died running the job max_deliveries times."""
    start_worker(TRAINER_MAX_DELIVERIES="2")
    job = SFTJob(
        job_id="doomed", model=str(tiny_models["policy"]), data=str(sft_data), output_dir=str(tmp_path)
    )
    redis.Redis.from_url(redis_url).hset(ledger_key(job.job_id), LEDGER_DELIVERIES, 2)
    app = make_celery_app("test-sender", redis_url)
    app.send_task(TASK_SFT, args=[job.model_dump(mode="json")], task_id=job.job_id)  # a redelivery

    with pytest.raises(JobFailed, match="delivered 3 times \\(limit 2\\)"):
        trainer_client.wait(job.job_id, timeout=60, poll_interval=0.1)
    assert "trainings" not in ledger(redis_url, job.job_id)
    assert list(tmp_path.glob("*doomed*")) == []
    app.close()
