"""kill -9 of the worker mid-job, then a new worker: the job is redelivered (not lost), trains to the end
exactly once more, publishes one loadable checkpoint, and is not run again afterwards."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from raftflow.celery_config import ledger_key
from raftflow.clients.trainer import JobFailed, TrainerClient
from raftflow.modeling import load_causal_lm
from raftflow.schemas.jobs import SFTJob, TrainingConfig

# Short enough that the test sees redelivery within seconds; production uses hours (docs/trainer.md).
RELIABILITY_ENV = {
    "TRAINER_VISIBILITY_TIMEOUT": "6",
    "TRAINER_RESTORE_INTERVAL": "1",
    "TRAINER_LOCK_TTL": "3",
    "TRAINER_MAX_DELIVERIES": "5",
}


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def test_killed_worker_job_is_redelivered_and_completes_once(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient, redis_url: str
) -> None:
    out = tmp_path / "ckpt"
    job = SFTJob(
        job_id="kill-me",
        model=str(tiny_models["policy"]),
        data=str(sft_data),
        output_dir=str(out),
        training=TrainingConfig(max_steps=100, learning_rate=1e-3, per_device_batch_size=4, max_length=48),
    )
    first = start_worker(**RELIABILITY_ENV)
    trainer_client.submit(job)

    def mid_training() -> bool:
        progress = trainer_client.progress(job.job_id)
        return progress.state == "PROGRESS" and 3 <= progress.step < progress.total_steps

    wait_until(mid_training, 90, "the first worker to be mid-training")
    first.kill()  # SIGKILL to the whole worker: parent and child, no cleanup
    r = redis.Redis.from_url(redis_url)
    assert r.hget(ledger_key(job.job_id), "trainings") == b"1"
    assert [p.name.split(".tmp-")[0] for p in out.iterdir()] == [".kill-me"]  # only a hidden temp dir

    start_worker(**RELIABILITY_ENV)
    result = trainer_client.wait(job.job_id, timeout=120, poll_interval=0.2)
    assert result.metrics["train_steps"] == 100
    assert [p.name for p in out.iterdir()] == ["kill-me"]  # the stale temp dir is gone
    model = load_causal_lm(result.checkpoint)
    assert model.config.n_positions == 256

    # Every copy of the message ends acknowledged (a copy the short visibility timeout re-queued during
    # the second run finds the finished checkpoint), and training ran twice: killed once, finished once.
    wait_until(lambda: r.llen("raftflow.trainer") == 0 and r.hlen("unacked") == 0, 30, "the queue to drain")
    counts = {k.decode(): int(v) for k, v in r.hgetall(ledger_key(job.job_id)).items() if k != b"submitted"}
    assert counts["trainings"] == 2 and counts["completions"] == 1, counts
    assert counts["deliveries"] >= 2
    assert trainer_client.progress(job.job_id).state == "SUCCESS"


def pool_children(pid: int) -> list[int]:
    """The Celery pool processes of worker ``pid`` (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_a_job_whose_process_keeps_dying_fails_instead_of_looping(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient, redis_url: str
) -> None:
    """The OOM-killer case: only the pool child dies. With task_reject_on_worker_lost the job is
    requeued instead of silently acked; past max_deliveries it fails with a message, once."""
    job = SFTJob(
        job_id="oom",
        model=str(tiny_models["policy"]),
        data=str(sft_data),
        output_dir=str(tmp_path / "out"),
        training=TrainingConfig(max_steps=100, learning_rate=1e-3, per_device_batch_size=4, max_length=48),
    )
    worker = start_worker(**{**RELIABILITY_ENV, "TRAINER_MAX_DELIVERIES": "1"})
    trainer_client.submit(job)
    wait_until(lambda: trainer_client.progress(job.job_id).state == "PROGRESS", 90, "training to start")
    (child,) = pool_children(worker.pid)
    os.kill(child, signal.SIGKILL)

    with pytest.raises(JobFailed, match="delivered 2 times \\(limit 1\\)"):
        trainer_client.wait(job.job_id, timeout=60, poll_interval=0.2)
    r = redis.Redis.from_url(redis_url)
    assert r.hget(ledger_key(job.job_id), "trainings") == b"1"
    assert worker.alive()  # the worker itself carries on with a fresh child
    wait_until(lambda: r.llen("raftflow.trainer") == 0 and r.hlen("unacked") == 0, 30, "the queue to drain")
    assert not (tmp_path / "out" / "oom").exists()
