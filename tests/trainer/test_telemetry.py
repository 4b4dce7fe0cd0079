"""The worker's Prometheus endpoint (TRAINER_METRICS_PORT): jobs by outcome, duration, tokens and
tokens/s, recorded in the pool child and served by the parent (prometheus_client multiprocess mode)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from raftflow.clients.trainer import JobFailed, TrainerClient
from raftflow.schemas.jobs import SFTJob, TrainingConfig
from raftflow.server import free_port

from .test_worker_kill import wait_until


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_worker_metrics_count_jobs_by_outcome_with_duration_and_tokens(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient
) -> None:
    port = free_port()
    start_worker(TRAINER_METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: _up(url), 60, "the metrics endpoint")

    def job(job_id: str, data: str) -> SFTJob:
        return SFTJob(
            job_id=job_id,
            model=str(tiny_models["policy"]),
            data=data,
            output_dir=str(tmp_path / "out"),
            training=TrainingConfig(max_steps=3, per_device_batch_size=4, max_length=48),
        )

    trainer_client.submit(job("ok", str(sft_data)))
    result = trainer_client.wait("ok", timeout=120)
    trainer_client.submit(job("ok", str(sft_data)))  # the same job again: its stored result
    trainer_client.wait("ok", timeout=60)
    trainer_client.submit(job("bad", str(tmp_path / "missing.json")))
    with pytest.raises(JobFailed):
        trainer_client.wait("bad", timeout=60)

    got = samples(url)
    kind = (("kind", "sft"),)
    assert got[("raftflow_trainer_jobs_total", (("kind", "sft"), ("outcome", "succeeded")))] == 1
    assert got[("raftflow_trainer_jobs_total", (("kind", "sft"), ("outcome", "cached")))] == 1
    assert got[("raftflow_trainer_jobs_total", (("kind", "sft"), ("outcome", "failed")))] == 1
    assert got[("raftflow_trainer_job_duration_seconds_count", kind)] == 1
    assert 0 < got[("raftflow_trainer_job_duration_seconds_sum", kind)] < 120
    assert got[("raftflow_trainer_train_tokens_total", kind)] == result.metrics["train_tokens"]
    assert got[("raftflow_trainer_tokens_per_second", kind)] == pytest.approx(
        result.metrics["tokens_per_second"]
    )
    assert got[("raftflow_trainer_jobs_running", kind)] == 0


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
