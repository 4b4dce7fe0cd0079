"""RAFT runs through the real services: completion, metrics, plots, cancel, bad bodies."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import pytest

from raftflow.data import write_text2text

REQUIRED_METRICS = {
    "on_policy_reward",
    "best_of_k_reward",
    "reward_gap",
    "reward_std",
    "selected_reward",
    "distinct_1",
    "distinct_2",
    "mean_length",
    "discard_rate",
    "sample_s",
    "score_s",
    "train_s",
    "load_s",
}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orchestrator-state")


@pytest.fixture(scope="module")
def orchestrator(stack, state_dir):
    process, base_url = stack.start_orchestrator(state_dir)
    yield base_url
    process.stop()


def test_two_iteration_run_trains_and_reloads_each_time(stack, orchestrator, state_dir) -> None:
    pairs = state_dir / "heldout.json"
    write_text2text(pairs, [("the cat", " sat on the mat"), ("rain and", " wind all day")])
    body = stack.minimal_body(eval_prompts=str(stack.prompts), max_eval_prompts=4, eval_pairs=str(pairs))
    created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    assert created.headers["location"].endswith(f"/iterations/{run_id}")

    view = stack.wait(orchestrator, run_id, {"succeeded", "failed", "cancelled"})
    assert view["status"] == "succeeded", view["error"]
    assert view["percent_complete"] == 100.0
    iterations = view["iterations"]
    assert [it["index"] for it in iterations] == [0, 1]
    checkpoints = [it["checkpoint"] for it in iterations]
    assert len(set(checkpoints)) == 2
    for checkpoint in checkpoints:
        assert (Path(checkpoint) / "model.safetensors").exists()
    assert view["policy"] == checkpoints[-1]

    for it in iterations:
        assert it["metrics"].keys() >= REQUIRED_METRICS
        assert all(math.isfinite(v) for v in it["metrics"].values()), it["metrics"]
        assert 0.0 <= it["metrics"]["discard_rate"] <= 1.0
        assert it["metrics"]["best_of_k_reward"] >= it["metrics"]["on_policy_reward"]
        assert it["metrics"]["selected_count"] <= 8
        # Held-out reward and KL to the initial policy, measured after training (so not exactly 0).
        assert math.isfinite(it["metrics"]["eval_reward"]) and math.isfinite(it["metrics"]["kl_to_initial"])
        # Perplexity of the held-out responses under the new policy (a tiny model: far above 1).
        assert 1.0 < it["metrics"]["eval_ppl"] < 1e6
    assert iterations[0]["metrics"]["kl_to_initial"] != 0.0

    # The generator now serves the last checkpoint and was reloaded once per iteration.
    models = httpx.get(f"{stack.generator_url}/v1/models", timeout=10).json()
    assert models["checkpoint"] == checkpoints[-1]
    assert models["load_count"] >= 3  # the initial model + one load per iteration
    assert models["reference_checkpoint"] == body["policy"]  # the run's initial policy, for the KL

    # Each stage left its artifact; the selected set holds one (prompt, response) per kept prompt.
    run_dir = state_dir / "artifacts" / "runs" / run_id
    for name in ("samples.json", "scores.json", "selected.json", "metrics.json"):
        assert (run_dir / "iter-000" / name).exists(), name

    plot = httpx.get(f"{orchestrator}/iterations/{run_id}/metrics.png", timeout=30)
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    listed = httpx.get(f"{orchestrator}/iterations", timeout=10).json()
    assert run_id in [run["id"] for run in listed]
    metrics = httpx.get(f"{orchestrator}/metrics", timeout=10).text
    assert "raftflow_orchestrator_iterations_total" in metrics


def test_lora_run_trains_an_adapter_per_iteration_and_serves_it_merged(
    stack, orchestrator, state_dir
) -> None:
    """LoRA through a whole run: each iteration trains fresh adapters on the current policy and merges
    them, so the generator reloads a plain checkpoint; the run's prompt format (auto: hh for the tiny
    tokenizer, which has no chat template) is recorded in every checkpoint."""
    from safetensors.torch import load_file

    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["c_attn"]}
    body = stack.minimal_body(training={"lora": lora, "learning_rate": 5e-3, "epochs": 1.0})
    created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
    assert created.status_code == 202, created.text
    view = stack.wait(orchestrator, created.json()["id"], {"succeeded", "failed", "cancelled"})
    assert view["status"] == "succeeded", view["error"]
    checkpoints = [Path(it["checkpoint"]) for it in view["iterations"]]
    assert len(checkpoints) == 2
    weights = [load_file(stack.models["policy"] / "model.safetensors")]
    for checkpoint in checkpoints:
        assert not (checkpoint / "adapter_config.json").exists()  # merged: plain from_pretrained
        assert json.loads((checkpoint / "config.json").read_text())["raftflow_prompt_format"] == "hh"
        weights.append(load_file(checkpoint / "model.safetensors"))
    name = next(key for key in weights[0] if "c_attn.weight" in key)
    # Each iteration moved the adapted weights (merged in); the rest stayed the base model's.
    assert (weights[1][name] - weights[0][name]).abs().max() > 0
    assert (weights[2][name] - weights[1][name]).abs().max() > 0
    frozen = next(key for key in weights[0] if "mlp.c_fc.weight" in key)
    assert (weights[2][frozen] - weights[0][frozen]).abs().max() == 0
    models = httpx.get(f"{stack.generator_url}/v1/models", timeout=10).json()
    assert models["checkpoint"] == str(checkpoints[-1])


def test_top_reward_percentage_sets_k_and_min_new_tokens_varies_lengths(
    stack, orchestrator, state_dir
) -> None:
    """LMFlow's way to set K (K = 1 / top_reward_percentage) and its per-batch draw of the new-token
    limit in [min_new_tokens, max_new_tokens], through a real run: the stored samples show both."""
    body = stack.minimal_body(
        num_iterations=1, top_reward_percentage=0.25, min_new_tokens=3, max_new_tokens=24
    )
    del body["k"]
    created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    view = stack.wait(orchestrator, run_id, {"succeeded", "failed", "cancelled"})
    assert view["status"] == "succeeded", view["error"]
    samples = json.loads(
        (state_dir / "artifacts" / "runs" / run_id / "iter-000" / "samples.json").read_text()
    )
    assert len(samples) == 8 and all(len(row["samples"]) == 4 for row in samples)  # K = 1 / 0.25
    capped = {
        s["completion_tokens"] for row in samples for s in row["samples"] if s["finish_reason"] == "length"
    }
    assert capped, "no sample reached its token limit"
    assert all(3 <= n <= 24 for n in capped)
    assert min(capped) < 24  # the drawn limit, not max_new_tokens alone
    assert view["iterations"][0]["metrics"]["selected_count"] <= 8


def test_cancel_stops_a_running_run(stack, orchestrator) -> None:
    body = stack.minimal_body(num_iterations=20)
    run_id = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30).json()["id"]
    stack.wait(orchestrator, run_id, {"failed"}, until=lambda v: v["status"] == "running")
    cancelled = httpx.post(f"{orchestrator}/iterations/{run_id}/cancel", timeout=30)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = httpx.post(f"{orchestrator}/iterations/{run_id}/cancel", timeout=30)
    assert again.status_code == 409
    view = stack.wait(orchestrator, run_id, {"cancelled"})
    done = [it for it in view["iterations"] if it["stage"] == "done"]
    assert len(done) < 20


def test_cancel_during_training_revokes_the_job_and_frees_the_worker(stack, orchestrator, state_dir) -> None:
    """Before, a cancelled run's training job kept training (and holding the device) behind it."""
    from raftflow.clients.trainer import TrainerClient

    body = stack.minimal_body(num_iterations=1, training={"max_steps": 100_000, "epochs": 1.0})
    run_id = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30).json()["id"]

    def training(view: dict) -> bool:
        return view["stage"] == "train" and view["progress"] is not None and view["progress"]["done"] >= 2

    stack.wait(orchestrator, run_id, {"failed", "succeeded"}, until=training)
    assert httpx.post(f"{orchestrator}/iterations/{run_id}/cancel", timeout=30).status_code == 200
    job_id = f"{run_id}-iter000"
    with TrainerClient(stack.redis_url, retry_seconds=10) as trainer:
        deadline = time.monotonic() + 60
        while trainer.progress(job_id).state != "REVOKED":
            assert time.monotonic() < deadline, trainer.progress(job_id)
            time.sleep(0.2)
    # The worker is free at once: a new run's training job is picked up and finishes.
    quick = httpx.post(f"{orchestrator}/iterations", json=stack.minimal_body(num_iterations=1), timeout=30)
    view = stack.wait(orchestrator, quick.json()["id"], {"succeeded", "failed", "cancelled"})
    assert view["status"] == "succeeded", view["error"]
    # The revoked job never finished, and was not delivered again.
    assert not (state_dir / "artifacts" / "runs" / run_id / "checkpoints" / job_id).exists()
    with TrainerClient(stack.redis_url, retry_seconds=10) as trainer:
        assert trainer.progress(job_id).state == "REVOKED"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_iterations": 0}, "num_iterations"),
        ({"k": 0}, "k"),
        ({"selection": "best"}, "selection"),
        ({"prompts": "/nonexistent/prompts.jsonl"}, "prompts"),
        ({"policy": "/nonexistent/model"}, "policy"),
        ({"temperature": -1}, "temperature"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_bodies_get_422_naming_the_field(stack, orchestrator, change, field) -> None:
    response = httpx.post(f"{orchestrator}/iterations", json=stack.minimal_body(**change), timeout=30)
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(field in loc for loc in locations), locations


def test_k_and_top_reward_percentage_conflict_and_missing_fields(stack, orchestrator) -> None:
    both = httpx.post(
        f"{orchestrator}/iterations", json=stack.minimal_body(top_reward_percentage=0.25), timeout=30
    )
    assert both.status_code == 422 and "not both" in both.text
    missing = httpx.post(f"{orchestrator}/iterations", json={"prompts": str(stack.prompts)}, timeout=30)
    assert missing.status_code == 422
    assert ["body", "policy"] in [e["loc"] for e in missing.json()["detail"]]
    assert httpx.get(f"{orchestrator}/iterations/nope", timeout=10).status_code == 404
