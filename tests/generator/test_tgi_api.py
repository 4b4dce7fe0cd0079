"""The TGI subset through the official ``text-generation`` clients (sync and async) and plain HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from text_generation import AsyncClient, Client
from text_generation.errors import ValidationError

from tests.generator.conftest import LIMITS, Generator


@pytest.fixture(scope="module")
def client(generator: Generator) -> Client:
    return Client(generator.url, headers=generator.headers, timeout=60)


def test_client_generate_with_details(client: Client) -> None:
    response = client.generate("The quick brown fox", max_new_tokens=7, do_sample=True, seed=4)
    details = response.details
    assert details.generated_tokens == len(details.tokens) <= 7
    assert details.seed == 4
    assert details.finish_reason.value in ("length", "eos_token")
    assert response.generated_text == "".join(token.text for token in details.tokens if not token.special)
    assert all(token.logprob is not None and token.logprob <= 0 for token in details.tokens)
    again = client.generate("The quick brown fox", max_new_tokens=7, do_sample=True, seed=4)
    assert again.generated_text == response.generated_text


def test_best_of_returns_the_best_and_the_others(client: Client) -> None:
    response = client.generate("Life is", max_new_tokens=6, do_sample=True, best_of=3)
    others = response.details.best_of_sequences
    assert len(others) == 2

    def mean_logprob(tokens: list) -> float:
        return sum(t.logprob for t in tokens) / len(tokens)

    best = mean_logprob(response.details.tokens)
    assert all(best >= mean_logprob(seq.tokens) for seq in others)


def test_greedy_return_full_text_and_stop_sequences(client: Client) -> None:
    greedy = client.generate("Never", max_new_tokens=8)
    assert greedy.details.seed is None
    assert greedy.generated_text == client.generate("Never", max_new_tokens=8).generated_text
    full = client.generate("Never", max_new_tokens=8, return_full_text=True)
    assert full.generated_text == "Never" + greedy.generated_text

    stopped = client.generate("Never", max_new_tokens=40, do_sample=True, seed=1, stop_sequences=[" "])
    assert stopped.details.finish_reason.value == "stop_sequence"
    assert stopped.generated_text.endswith(" ")  # TGI keeps the stop sequence
    assert " " not in stopped.generated_text[:-1]


def test_async_client(generator: Generator) -> None:
    async def run() -> list[str]:
        client = AsyncClient(generator.url, headers=generator.headers, timeout=60)
        responses = await asyncio.gather(
            *(client.generate("What", max_new_tokens=5, do_sample=True, seed=seed) for seed in range(4))
        )
        return [r.generated_text for r in responses]

    texts = asyncio.run(run())
    assert len(texts) == 4 and len(set(texts)) > 1


def test_client_sees_tgi_shaped_validation_errors(client: Client) -> None:
    with pytest.raises(ValidationError, match="max_new_tokens"):
        client.generate("Hi", max_new_tokens=LIMITS["max_tokens"] + 1)


def test_generate_route_and_info(generator: Generator) -> None:
    plain = generator.post("/generate", {"inputs": "Hello", "parameters": {"max_new_tokens": 3}})
    assert plain.status_code == 200
    assert set(plain.json()) == {"generated_text"}  # no details unless asked

    info = httpx.get(generator.url + "/info").json()
    assert info["max_best_of"] == LIMITS["max_n"]
    assert info["max_total_tokens"] == 256 and info["max_input_tokens"] == 255
    assert info["model_sha"] in info["model_id"] or len(info["model_sha"]) == 12
    assert info["model_device_type"] == "cpu" and info["model_dtype"] == "float32"
