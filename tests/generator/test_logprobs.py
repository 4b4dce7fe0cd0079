"""POST /v1/logprobs and the reference model: sums match a direct forward pass, reference vs current,
bad inputs, and the client methods the orchestrator's KL estimate uses."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftflow.clients.errors import ComponentRejected
from raftflow.clients.generator import CompletionsClient
from raftflow.schemas.generation import Sample
from raftflow_cli.tiny_models import TinyModelConfig, build_models
from tests.generator.conftest import Generator, limit_flags, start_generator

PROMPTS = ["The cat", "A long time ago in a land far away there lived", "Hello", "Why"]


@pytest.fixture(scope="module")
def other_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny policy with other weights (same tokenizer, since BPE training is deterministic)."""
    return build_models(tmp_path_factory.mktemp("other-models"), TinyModelConfig(seed=1))["policy"]


@pytest.fixture(scope="module")
def server(
    tiny_models: dict[str, Path], other_policy: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Generator]:
    """Serves the tiny policy with itself as reference; a token budget small enough that the pairs
    below need several forward passes (so batching and padding are exercised)."""
    roots = [str(tiny_models["policy"].parent), str(other_policy.parent)]
    generator = start_generator(
        tmp_path_factory.mktemp("logprobs-logs"),
        "--model",
        str(tiny_models["policy"]),
        *limit_flags(token_budget=64),
        env={
            "GENERATOR_REFERENCE_MODEL": str(tiny_models["policy"]),
            "GENERATOR_LOAD_ROOTS": json.dumps(roots),
        },
    )
    yield generator
    generator.process.stop()


def client_call(server: Generator, method: str, *args: object, **kwargs: object) -> object:
    async def run() -> object:
        async with CompletionsClient(
            server.url, api_token=server.token, retry_seconds=5, prompts_per_request=3
        ) as client:
            return await getattr(client, method)(*args, **kwargs)

    return asyncio.run(run())


def direct_logprobs(checkpoint: Path, prompts: list[str], responses: list[str]) -> list[float]:
    """One unpadded forward pass per pair, in this process: what the service must reproduce."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    sums = []
    for prompt, response in zip(prompts, responses, strict=True):
        prompt_ids = tokenizer(prompt)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        targets = ids[0, 1:]
        picked = logp.gather(-1, targets[:, None]).squeeze(-1)[len(prompt_ids) - 1 :]
        sums.append(float(picked.sum()))
    return sums


def sampled_responses(server: Generator) -> list[str]:
    choices = server.complete(prompt=PROMPTS, n=1, max_tokens=24, seed=3)["choices"]
    return [choice["text"] for choice in choices]


def test_logprobs_match_a_direct_forward_pass_and_track_the_reference(
    server: Generator, tiny_models: dict[str, Path], other_policy: Path
) -> None:
    responses = sampled_responses(server)
    prompts = [*PROMPTS, "Empty response"]
    responses = [*responses, ""]
    body = {"prompts": prompts, "responses": responses}
    answer = server.post("/v1/logprobs", body).json()
    expected = direct_logprobs(tiny_models["policy"], prompts, responses)
    assert answer["logprobs"] == pytest.approx(expected, abs=1e-4)
    assert answer["logprobs"][-1] == 0.0 and answer["tokens"][-1] == 0
    assert all(tokens > 0 for tokens in answer["tokens"][:-1])
    assert answer["model"].startswith(str(tiny_models["policy"]))

    # Same checkpoint as reference (from GENERATOR_REFERENCE_MODEL): identical sums, KL exactly 0.
    models = server_models(server)
    assert models["reference_checkpoint"] == str(tiny_models["policy"])
    reference = client_call(server, "sequence_logprobs", prompts, responses, "reference")
    current = client_call(server, "sequence_logprobs", prompts, responses)
    assert reference == current  # the same requests: the same sums, to the bit
    # Other batches (the client sends 3 pairs per request): the same up to float rounding.
    assert current == pytest.approx(answer["logprobs"], rel=1e-7)

    # Another checkpoint as current: current moves, the reference stays put.
    client_call(server, "load_checkpoint", str(other_policy))
    moved = client_call(server, "sequence_logprobs", prompts, responses)
    assert moved == pytest.approx(direct_logprobs(other_policy, prompts, responses), abs=1e-4)
    assert all(abs(a - b) > 1e-3 for a, b in zip(moved[:-1], reference[:-1], strict=True))
    assert client_call(server, "sequence_logprobs", prompts, responses, "reference") == reference

    # Replacing the reference: both the same checkpoint again.
    report = client_call(server, "load_reference", str(other_policy))
    assert report["reference_checkpoint"] == str(other_policy) and report["checkpoint"] == str(other_policy)
    assert client_call(server, "sequence_logprobs", prompts, responses, "reference") == moved

    # A reference outside GENERATOR_LOAD_ROOTS is refused like a bad path, and changes nothing.
    with pytest.raises(ComponentRejected) as rejected:
        client_call(server, "load_reference", "/etc")
    assert rejected.value.status_code == 422
    assert rejected.value.detail[0]["loc"] == ["body", "reference"]
    assert server_models(server)["reference_checkpoint"] == str(other_policy)


def server_models(server: Generator) -> dict:
    return client_call(server, "models")  # type: ignore[return-value]


def test_bad_bodies_get_a_422_and_a_missing_reference_a_409(generator: Generator) -> None:
    """On the shared server (no reference model): nothing here changes its state."""
    cases = [
        ({"prompts": ["a", "b"], "responses": ["x"]}, ["body", "responses"]),
        ({"prompts": [], "responses": []}, ["body", "prompts"]),
        ({"prompts": ["a"], "responses": ["x"], "model": "initial"}, ["body", "model"]),
        ({"prompts": ["a"] * 33, "responses": ["x"] * 33}, ["body", "prompts"]),  # max_prompts is 32
        ({"prompts": ["a", "b"], "responses": ["x", "word " * 300]}, ["body", "responses", 1]),
    ]
    for body, loc in cases:
        response = generator.post("/v1/logprobs", body)
        assert response.status_code == 422, (body, response.text)
        assert loc in [error["loc"] for error in response.json()["detail"]], response.text
    assert "one response per prompt" in generator.post("/v1/logprobs", cases[0][0]).text

    missing = generator.post("/v1/logprobs", {"prompts": ["a"], "responses": ["x"], "model": "reference"})
    assert missing.status_code == 409 and "no reference model" in missing.json()["detail"]
    assert server_models(generator)["reference_checkpoint"] is None
    unauthorised = generator.post("/v1/logprobs", {"prompts": ["a"], "responses": ["x"]})
    assert unauthorised.status_code == 200
    assert (
        Generator(generator.process, generator.url, token=None)
        .post("/v1/logprobs", {"prompts": ["a"], "responses": ["x"]})
        .status_code
        == 401
    )
    assert math.isfinite(unauthorised.json()["logprobs"][0])


def direct_id_logprobs(checkpoint: Path, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """Sum of log p(response ids | prompt ids) per pair, one unpadded forward pass each, in this process."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    sums = []
    for prompt_ids, response_ids in pairs:
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        picked = logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[len(prompt_ids) - 1 :]
        sums.append(float(picked.sum()))
    return sums


def test_sampled_ids_are_scored_as_sampled_eos_included(
    server: Generator, tiny_models: dict[str, Path], other_policy: Path
) -> None:
    """``/v1/completions`` returns each sample's ids (``return_token_ids``); ``/v1/logprobs`` scores
    those ids, an EOS that ended a sample included, exactly as a direct forward pass does, under the
    current and the reference model (their difference is the sample's KL term). The decoded text
    leaves the EOS out: scored as text, it loses the stop decision's term."""
    from transformers import AutoTokenizer

    client_call(server, "load_checkpoint", str(other_policy))
    client_call(server, "load_reference", str(tiny_models["policy"]))
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["policy"])
    choices = server.complete(prompt=PROMPTS, n=2, max_tokens=12, seed=5, return_token_ids=True)["choices"]
    prompts = [PROMPTS[choice["prompt_index"]] for choice in choices]
    prompt_ids = [choice["prompt_token_ids"] for choice in choices]
    assert prompt_ids == [tokenizer(prompt)["input_ids"] for prompt in prompts]
    assert all(len(choice["token_ids"]) == choice["completion_tokens"] == 12 for choice in choices)
    # The random tiny policy never ends on EOS within 12 tokens; samples that did end so: their
    # sampled ids cut short, then EOS (the ids the generator returns for an EOS-ended sample).
    eos = tokenizer.eos_token_id
    ids = [choice["token_ids"][: 3 + i] + [eos] for i, choice in enumerate(choices)]

    body = {"prompts": prompts, "response_token_ids": ids}
    current = server.post("/v1/logprobs", body).json()
    reference = server.post("/v1/logprobs", {**body, "model": "reference"}).json()
    pairs = list(zip(prompt_ids, ids, strict=True))
    assert current["tokens"] == [len(row) for row in ids]
    assert current["logprobs"] == pytest.approx(direct_id_logprobs(other_policy, pairs), abs=1e-4)
    assert reference["logprobs"] == pytest.approx(direct_id_logprobs(tiny_models["policy"], pairs), abs=1e-4)
    # The orchestrator's path: samples that carry their ids are scored by them.
    samples = [
        Sample(text="(not used)", finish_reason="stop", completion_tokens=len(row), token_ids=row)
        for row in ids
    ]
    assert client_call(server, "sample_logprobs", prompts, samples) == pytest.approx(current["logprobs"])

    # The same samples as text: no EOS term (and text can re-encode to other ids).
    texts = [tokenizer.decode(row, skip_special_tokens=True) for row in ids]
    as_text = server.post("/v1/logprobs", {"prompts": prompts, "responses": texts}).json()
    assert as_text["tokens"] == [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert eos not in [t for text in texts for t in tokenizer(text)["input_ids"]]
    assert all(abs(a - b) > 1e-3 for a, b in zip(as_text["logprobs"], current["logprobs"], strict=True))
    text_samples = [
        sample.model_copy(update={"text": t, "token_ids": None})
        for sample, t in zip(samples, texts, strict=True)
    ]
    assert client_call(server, "sample_logprobs", prompts, text_samples) == pytest.approx(as_text["logprobs"])

    # Ids outside the vocabulary, or both forms at once: a 422.
    bad = server.post("/v1/logprobs", {"prompts": prompts[:1], "response_token_ids": [[10**6]]})
    assert bad.status_code == 422 and "vocabulary" in bad.text
    both = server.post("/v1/logprobs", {**body, "responses": texts})
    assert both.status_code == 422 and "one of them" in both.text


def test_perplexity_counts_the_eos_after_each_reply(server: Generator, other_policy: Path) -> None:
    """eval_ppl's definition, the demo's in-process one too: every reply token and the EOS after it."""
    from transformers import AutoTokenizer

    client_call(server, "load_checkpoint", str(other_policy))
    tokenizer = AutoTokenizer.from_pretrained(other_policy)
    responses = [" sat on the mat", " and then", " is it so", " because"]
    pairs = [
        (
            tokenizer(p)["input_ids"],
            tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
        )
        for p, r in zip(PROMPTS, responses, strict=True)
    ]
    sums = direct_id_logprobs(other_policy, pairs)
    expected = math.exp(-sum(sums) / sum(len(r) for _, r in pairs))
    assert client_call(server, "perplexity", PROMPTS, responses) == pytest.approx(expected, rel=1e-5)
