"""POST /v1/completions through the official openai client and plain HTTP: grouping, batching,
determinism, stop strings, min_tokens and metrics, on the shared tiny-model server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from transformers import AutoTokenizer

from services.generator.engine.batching import plan_batches
from tests.generator.conftest import LIMITS, Generator

PROMPTS = ["The quick brown fox", "Life is", "A penny saved", "Never", "What", "You will", "Go", "If"]


def texts(response: dict) -> list[str]:
    return [choice["text"] for choice in response["choices"]]


@pytest.fixture(scope="module")
def client(generator: Generator) -> openai.OpenAI:
    return openai.OpenAI(base_url=generator.url + "/v1", api_key=generator.token, max_retries=0)


def test_openai_client_gets_p_times_n_choices_grouped_by_prompt(
    client: openai.OpenAI, generator: Generator
) -> None:
    models = client.models.list()
    served = models.data[0]
    completion = client.completions.create(
        model=served.id, prompt=PROMPTS[:3], n=4, max_tokens=8, seed=11, extra_body={"top_k": 0}
    )
    assert completion.object == "text_completion"
    assert completion.model == served.id
    assert served.version in completion.model  # the model field names checkpoint and version
    assert completion.system_fingerprint == served.version
    assert [c.index for c in completion.choices] == list(range(12))
    assert [c.prompt_index for c in completion.choices] == [i // 4 for i in range(12)]
    assert all(c.finish_reason in ("stop", "length") for c in completion.choices)
    counts = [c.completion_tokens for c in completion.choices]
    assert all(1 <= count <= 8 for count in counts)
    assert completion.usage.completion_tokens == sum(counts)
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + sum(counts)
    # Samples differ within a prompt (sampling at temperature 1 over a 1024-token vocabulary).
    assert len({c.text for c in completion.choices[:4]}) > 1


def test_single_string_prompt(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="any", prompt="Hello", max_tokens=5, seed=1)
    assert len(completion.choices) == 1 and completion.choices[0].index == 0


def test_same_seed_same_samples_other_seed_other_samples(generator: Generator) -> None:
    body = {"prompt": PROMPTS, "n": 3, "max_tokens": 12, "seed": 1234}
    first = [c["text"] for c in generator.complete(**body)["choices"]]
    again = [c["text"] for c in generator.complete(**body)["choices"]]
    other = [c["text"] for c in generator.complete(**{**body, "seed": 1235})["choices"]]
    assert first == again
    assert first != other
    unseeded = [
        [c["text"] for c in generator.complete(**{**body, "seed": None})["choices"]] for _ in range(2)
    ]
    assert unseeded[0] != unseeded[1]


def test_concurrent_requests_get_the_samples_they_would_get_alone(generator: Generator) -> None:
    bodies = [{"prompt": PROMPTS[i : i + 3], "n": 2, "max_tokens": 10, "seed": 40 + i} for i in range(4)]
    alone = [texts(generator.complete(**body)) for body in bodies]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda body: texts(generator.complete(**body)), bodies))
    assert together == alone


def test_one_generate_call_for_a_request_within_the_token_budget(generator: Generator) -> None:
    calls = generator.metric("generator_batch_rows_count")
    rows = generator.metric("generator_batch_rows_sum")
    samples = generator.metric("generator_samples_total")
    response = generator.complete(prompt=PROMPTS, n=4, max_tokens=16, seed=3)
    assert len(response["choices"]) == 32
    assert generator.metric("generator_batch_rows_count") - calls == 1  # not one call per prompt
    assert generator.metric("generator_batch_rows_sum") - rows == 32
    assert generator.metric("generator_samples_total") - samples == 32


def test_large_request_runs_as_few_calls_as_the_budget_allows(
    generator: Generator, tiny_models: dict[str, Path]
) -> None:
    prompts = [f"{word} is what happens" for word in "abcdefghijklmnopqrstuvwxyzABCDEF"]
    n, max_tokens = 8, 16
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["policy"])
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    expected = plan_batches(lengths, n, max_tokens, LIMITS["token_budget"])
    assert 1 < len(expected) < len(prompts)

    calls = generator.metric("generator_batch_rows_count")
    response = generator.complete(prompt=prompts, n=n, max_tokens=max_tokens, seed=5)
    assert generator.metric("generator_batch_rows_count") - calls == len(expected)
    choices = response["choices"]
    assert len(choices) == len(prompts) * n
    assert [c["index"] for c in choices] == list(range(len(prompts) * n))
    assert [c["prompt_index"] for c in choices] == [i // n for i in range(len(prompts) * n)]


def test_greedy_samples_are_identical_and_repeatable(generator: Generator) -> None:
    body = {"prompt": PROMPTS[:2], "n": 3, "max_tokens": 10, "temperature": 0}
    first = [c["text"] for c in generator.complete(**body)["choices"]]
    assert len(set(first[:3])) == 1 and len(set(first[3:])) == 1
    assert first == [c["text"] for c in generator.complete(**{**body, "seed": 99})["choices"]]


def test_stop_strings_end_samples_and_are_not_returned(generator: Generator) -> None:
    response = generator.complete(prompt=PROMPTS[:4], n=4, max_tokens=40, seed=8, stop=[" ", "e"])
    choices = response["choices"]
    assert all(" " not in c["text"] and "e" not in c["text"] for c in choices)
    stopped = [c for c in choices if c["finish_reason"] == "stop"]
    assert stopped  # 40 random tokens without a space or an "e" is all but impossible
    assert all(c["completion_tokens"] < 40 for c in stopped)


def test_min_tokens_draws_one_length_per_batch(generator: Generator) -> None:
    lengths = set()
    for seed in range(6):
        choices = generator.complete(prompt=PROMPTS[:4], n=2, max_tokens=24, min_tokens=2, seed=seed)[
            "choices"
        ]
        at_limit = {c["completion_tokens"] for c in choices if c["finish_reason"] == "length"}
        assert len(at_limit) == 1  # one draw for the whole batch
        assert 2 <= at_limit.pop() <= 24
        lengths |= {c["completion_tokens"] for c in choices if c["finish_reason"] == "length"}
    assert len(lengths) > 1


def test_metrics_count_requests_and_tokens(generator: Generator) -> None:
    before = {
        "requests": generator.metric("generator_http_requests_total", route="/v1/completions", status="200"),
        "tokens": generator.metric("generator_completion_tokens_total"),
    }
    usage = generator.complete(prompt=PROMPTS[:2], n=2, max_tokens=6, seed=2)["usage"]
    after_requests = generator.metric("generator_http_requests_total", route="/v1/completions", status="200")
    assert after_requests - before["requests"] == 1
    assert (
        generator.metric("generator_completion_tokens_total") - before["tokens"] == usage["completion_tokens"]
    )
    text = httpx.get(generator.url + "/metrics").text
    for name in (
        "generator_http_request_seconds_bucket",
        "generator_batch_seconds_bucket",
        "generator_prompt_tokens",
    ):
        assert name in text


def test_logprobs_and_echo_follow_openai_and_agree_with_v1_logprobs(generator: Generator) -> None:
    """logprobs=N: per-token log-probabilities and N alternatives; with echo the prompt's tokens come
    first (the first has none). At temperature 1 with no top-k/top-p, a completion's summed logprobs
    equal what /v1/logprobs scores for the same text."""
    body = {"prompt": "Life is", "n": 4, "max_tokens": 6, "seed": 5, "top_k": 0, "logprobs": 2}
    choices = generator.complete(**body)["choices"]
    compared = 0
    for choice in choices:
        logprobs = choice["logprobs"]
        assert "".join(logprobs["tokens"]) == choice["text"]
        assert len(logprobs["token_logprobs"]) == choice["completion_tokens"]
        assert all(value <= 0 for value in logprobs["token_logprobs"])
        for value, top in zip(logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True):
            assert len(top) == 2 and max(top.values()) >= value - 1e-4  # the best alternative is listed
        assert logprobs["text_offset"][0] == 0
        scored = generator.post(
            "/v1/logprobs", {"prompts": ["Life is"], "responses": [choice["text"]]}
        ).json()
        if scored["tokens"] == [choice["completion_tokens"]]:  # the text re-tokenizes to the same tokens
            assert sum(logprobs["token_logprobs"]) == pytest.approx(scored["logprobs"][0], abs=1e-3)
            compared += 1
    assert compared >= 1

    echoed = generator.complete(**{**body, "echo": True, "n": 1})["choices"][0]
    logprobs = echoed["logprobs"]
    assert echoed["text"].startswith("Life is")
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] == {}
    assert "".join(logprobs["tokens"]) == echoed["text"]
    assert logprobs["text_offset"] == [
        len("".join(logprobs["tokens"][:i])) for i in range(len(logprobs["tokens"]))
    ]
    zero = generator.complete(prompt="Life is", max_tokens=3, seed=5, logprobs=0)["choices"][0]["logprobs"]
    assert zero["top_logprobs"] is None and len(zero["token_logprobs"]) >= 1


def test_prompt_format_renders_before_sampling_and_echo_shows_it(generator: Generator) -> None:
    raw = generator.complete(prompt="Why?", max_tokens=2, seed=1, echo=True)["choices"][0]["text"]
    assert raw.startswith("Why?")
    hh = generator.complete(prompt="Why?", max_tokens=2, seed=1, echo=True, prompt_format="hh")
    assert hh["choices"][0]["text"].startswith("\n\nHuman: Why?\n\nAssistant:")
    dialogue = "\n\nHuman: Why?\n\nAssistant:"
    again = generator.complete(prompt=dialogue, max_tokens=2, seed=1, echo=True, prompt_format="auto")
    assert (
        again["choices"][0]["text"].startswith(dialogue) and again["choices"][0]["text"].count("Human:") == 1
    )


def test_chat_completions_render_messages_and_sample_n(generator: Generator) -> None:
    response = generator.post(
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hello"}], "n": 3, "max_tokens": 5, "seed": 2},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and len(body["choices"]) == 3
    assert all(c["message"]["role"] == "assistant" for c in body["choices"])
    # Same conversation, same seed through /v1/completions in the HH form (the tiny tokenizer has no
    # chat template): the same samples.
    plain = generator.complete(prompt="Hello", n=3, max_tokens=5, seed=2, prompt_format="hh")
    assert [c["message"]["content"] for c in body["choices"]] == [c["text"] for c in plain["choices"]]
    bad = generator.post("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]})
    assert bad.status_code == 422 and "role" in bad.text
