"""Jobs on several processes (TRAINER_PROCESSES=2): accelerate launches 2 ranks that train over gloo on
the CPU, the worker reports their progress and publishes one checkpoint, and no rank outlives the job
when it is cancelled or its worker dies."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from raftflow.clients.trainer import TrainerClient
from raftflow.data import DataError, PromptResponse, write_text2text
from raftflow.modeling import load_causal_lm
from raftflow.schemas.jobs import JobResult, SFTJob, TrainingConfig
from raftflow_cli.commands import main
from services.trainer.jobs import run_job
from services.trainer.launcher import check_supported, launch_command
from services.trainer.settings import TrainerSettings

from .conftest import pairwise_accuracy, preference_pairs, response_loss, sft_examples
from .test_worker_kill import pool_children, wait_until

TWO_PROCESSES = {"TRAINER_PROCESSES": "2", "RAFTFLOW_TORCH_THREADS": "1"}


def rank_processes(job_id: str) -> list[psutil.Process]:
    """The launcher and rank processes of ``job_id`` (their command lines name its launch spec)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "services.trainer.rank" in cmdline and f"raftflow-launch-{job_id}-" in cmdline:
            found.append(process)
    return found


def long_job(job_id: str, model: Path, data: Path, out: Path) -> SFTJob:
    return SFTJob(
        job_id=job_id,
        model=str(model),
        data=str(data),
        output_dir=str(out),
        training=TrainingConfig(max_steps=20000, learning_rate=1e-3, per_device_batch_size=4, max_length=48),
    )


def test_a_two_process_job_trains_reports_progress_and_publishes_one_checkpoint(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient
) -> None:
    out = tmp_path / "out"
    job = SFTJob(
        job_id="ddp-sft",
        model=str(tiny_models["policy"]),
        data=str(sft_data),
        output_dir=str(out),
        training=TrainingConfig(
            epochs=6, learning_rate=2e-3, per_device_batch_size=4, max_length=48, logging_steps=1
        ),
    )
    start_worker(**TWO_PROCESSES)
    trainer_client.submit(job)
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 180
    while (progress := trainer_client.progress(job.job_id)).state not in ("SUCCESS", "FAILURE"):
        if progress.state == "PROGRESS":
            seen.append((progress.step, progress.total_steps))
        assert time.monotonic() < deadline, "the job did not finish in 180 s"
        time.sleep(0.05)
    result = trainer_client.wait(job.job_id, timeout=5)

    # 32 examples, 4 per process and step, 2 processes: 4 steps per epoch.
    assert result.metrics["train_steps"] == 24
    assert {total for _, total in seen} == {24}, seen
    assert any(0 < step < 24 for step, _ in seen), seen  # progress arrived while the ranks trained
    assert result.metrics["train_loss_last"] < result.metrics["train_loss_first"] - 0.5
    # Both ranks' tokens are counted: every example is seen once per epoch.
    assert result.metrics["examples"] == 32
    # One checkpoint, loadable, and it learned (measured by a plain forward pass, not the trainer).
    assert [p.name for p in out.iterdir()] == ["ddp-sft"]
    examples = sft_examples()
    assert response_loss(result.checkpoint, examples) < response_loss(tiny_models["policy"], examples) - 1.0
    assert load_causal_lm(result.checkpoint).config.n_positions == 256
    assert rank_processes(job.job_id) == []


def test_a_two_process_reward_model_from_the_cli_evaluates_on_both_ranks(
    tiny_models, preference_data: Path, tmp_path: Path, capsys
) -> None:
    """``raftflow train reward-model --local --processes 2``: the held-out pairs are scored across both
    ranks (the Trainer gathers the predictions) and the checkpoint ranks unseen pairs."""
    args = ["train", "reward-model", "--local", "--processes", "2", "--job-id", "ddp-rm"]
    args += ["--model", str(tiny_models["reward"]), "--data", str(preference_data), "--out", str(tmp_path)]
    args += [
        "--eval-fraction",
        "0.25",
        "--epochs",
        "4",
        "--lr",
        "3e-3",
        "--batch-size",
        "8",
        "--max-length",
        "32",
    ]
    assert main(args) == 0
    result = JobResult.model_validate(json.loads(capsys.readouterr().out))
    assert result.metrics["eval_pairs"] == 16
    assert result.metrics["eval_accuracy"] >= 0.75
    # 48 training pairs, 8 per process and step, 2 processes: 3 steps per epoch.
    assert result.metrics["train_steps"] == 12
    assert pairwise_accuracy(result.checkpoint, preference_pairs(40, seed=7)) >= 0.8


def test_fsdp_shards_the_model_and_saves_it_whole(tiny_models, sft_data: Path, tmp_path: Path) -> None:
    """TRAINER_DISTRIBUTED=fsdp (FSDP2 over gloo): each rank holds a shard; the save gathers the full
    state dict, so the checkpoint has every weight of the base model, at full shape, and it learned."""
    from safetensors import safe_open

    job = SFTJob(
        job_id="fsdp-sft",
        model=str(tiny_models["policy"]),
        data=str(sft_data),
        output_dir=str(tmp_path),
        training=TrainingConfig(epochs=3, learning_rate=2e-3, per_device_batch_size=4, max_length=48),
    )
    result = run_job(job, settings=TrainerSettings(processes=2, torch_threads=1, distributed="fsdp"))
    assert result.metrics["train_steps"] == 12

    def shapes(path: Path) -> dict[str, tuple[int, ...]]:
        with safe_open(str(path / "model.safetensors"), "pt") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}  # noqa: SIM118

    assert shapes(Path(result.checkpoint)) == shapes(tiny_models["policy"])
    examples = sft_examples()
    assert response_loss(result.checkpoint, examples) < response_loss(tiny_models["policy"], examples) - 1.0


def test_a_rank_that_rejects_the_data_fails_the_job_with_its_message(tiny_models, tmp_path: Path) -> None:
    data = tmp_path / "long.json"
    write_text2text(data, [PromptResponse("word " * 80, " answer")] * 4)
    job = SFTJob(
        job_id="ddp-bad",
        model=str(tiny_models["policy"]),
        data=str(data),
        output_dir=str(tmp_path / "out"),
        training=TrainingConfig(max_steps=2, max_length=16),
    )
    with pytest.raises(DataError, match="no example has a response token within max_length=16"):
        run_job(job, settings=TrainerSettings(processes=2, torch_threads=1))
    assert list((tmp_path / "out").iterdir()) == []  # the staging dir is gone


def test_killing_the_worker_child_kills_its_training_processes(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient
) -> None:
    """The OOM-killer case: the pool child dies by SIGKILL, no cleanup runs in it; the launcher
    (PR_SET_PDEATHSIG) and the ranks (their watchdog) must still go, freeing the device."""
    job = long_job("ddp-kill", tiny_models["policy"], sft_data, tmp_path / "out")
    worker = start_worker(**TWO_PROCESSES, TRAINER_MAX_DELIVERIES="1")
    trainer_client.submit(job)
    wait_until(lambda: (trainer_client.progress(job.job_id).step or 0) >= 2, 120, "the ranks to train")
    assert len(rank_processes(job.job_id)) >= 3  # the launcher and 2 ranks
    (child,) = pool_children(worker.pid)
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: rank_processes(job.job_id) == [], 15, "the training processes to exit")


def test_cancelling_a_job_stops_its_training_processes(
    tiny_models, sft_data: Path, tmp_path: Path, start_worker, trainer_client: TrainerClient
) -> None:
    job = long_job("ddp-cancel", tiny_models["policy"], sft_data, tmp_path / "out")
    start_worker(**TWO_PROCESSES)
    trainer_client.submit(job)
    wait_until(lambda: (trainer_client.progress(job.job_id).step or 0) >= 2, 120, "the ranks to train")
    trainer_client.cancel(job.job_id)
    wait_until(lambda: rank_processes(job.job_id) == [], 15, "the training processes to exit")
    assert not (tmp_path / "out" / job.job_id).exists()


def test_launch_options_per_engine() -> None:
    spec = Path("/tmp/spec.json")
    ddp = launch_command(TrainerSettings(processes=4), spec)
    assert ddp[ddp.index("--num_processes") + 1] == "4" and "--multi_gpu" in ddp
    assert ddp[-3:] == ["--module", "services.trainer.rank", str(spec)]
    zero3 = launch_command(TrainerSettings(processes=8, distributed="deepspeed_zero3"), spec)
    assert zero3[zero3.index("--zero_stage") + 1] == "3" and "--zero3_save_16bit_model" in zero3
    fsdp = launch_command(TrainerSettings(processes=2, distributed="fsdp"), spec)
    assert "--use_fsdp" in fsdp and "FULL_STATE_DICT" in fsdp
    custom = launch_command(TrainerSettings(processes=2, accelerate_config=Path("/etc/acc.yaml")), spec)
    assert custom[custom.index("--config_file") + 1] == "/etc/acc.yaml" and "--multi_gpu" not in custom


def test_lora_on_sharded_parameters_is_refused_before_launch() -> None:
    job = SFTJob(
        job_id="j", model="m", data="d.json", output_dir="/tmp", training=TrainingConfig(lora={"r": 4})
    )
    with pytest.raises(DataError, match="training.lora.*TRAINER_DISTRIBUTED=deepspeed_zero3"):
        check_supported(job, TrainerSettings(processes=2, distributed="deepspeed_zero3"))
    check_supported(job, TrainerSettings(processes=2, distributed="deepspeed_zero2"))  # params whole


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow


def test_two_process_lora_with_gradient_checkpointing_trains(
    tiny_models, sft_data: Path, tmp_path: Path, capsys
) -> None:
    """LoRA with gradient checkpointing on 2 processes (DDP over gloo): reentrant checkpointing and
    DDP's search for unused parameters failed with "Expected to mark a variable ready only once"."""
    args = ["train", "sft", "--local", "--processes", "2", "--job-id", "ddp-lora-gc"]
    args += ["--model", str(tiny_models["policy"]), "--data", str(sft_data), "--out", str(tmp_path)]
    args += [
        "--epochs",
        "4",
        "--lr",
        "1e-2",
        "--batch-size",
        "4",
        "--max-length",
        "48",
        "--logging-steps",
        "1",
    ]
    args += ["--lora-r", "8", "--lora-target-modules", "c_attn", "--gradient-checkpointing"]
    assert main(args) == 0
    result = JobResult.model_validate(json.loads(capsys.readouterr().out))
    # 32 examples, 4 per process and step, 2 processes: 4 steps per epoch.
    assert result.metrics["train_steps"] == 16
    assert result.metrics["train_loss_last"] < result.metrics["train_loss_first"]
    examples = sft_examples()
    assert response_loss(result.checkpoint, examples) < response_loss(tiny_models["policy"], examples) - 0.1
