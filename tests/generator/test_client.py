"""CompletionsClient, the orchestrator's sampler, against the shared generator: chunking, grouping,
chunk seeds, and typed failures."""

from __future__ import annotations

import asyncio
import time

import pytest

from raftflow.clients.errors import ComponentRejected, ComponentUnavailable
from raftflow.clients.generator import CompletionsClient
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.server import free_port
from tests.generator.conftest import LIMITS, Generator

PROMPTS = ["One", "Two words", "Three words here", "Four", "Five"]


def sample(
    client: CompletionsClient, prompts: list[str], n: int, params: SamplingParams
) -> list[list[Sample]]:
    async def run() -> list[list[Sample]]:
        async with client:
            return await client.sample(prompts, n, params)

    return asyncio.run(run())


def test_chunks_prompts_and_groups_samples_per_prompt(generator: Generator) -> None:
    requests = generator.metric("generator_http_requests_total", route="/v1/completions", status="200")
    params = SamplingParams(max_tokens=6, seed=3)
    client = CompletionsClient(generator.url, api_token=generator.token, prompts_per_request=2)
    groups = sample(client, PROMPTS, 3, params)
    after = generator.metric("generator_http_requests_total", route="/v1/completions", status="200")
    assert after - requests == 3  # 5 prompts in chunks of 2
    assert [len(group) for group in groups] == [3] * 5
    assert all(isinstance(s, Sample) and 1 <= s.completion_tokens <= 6 for g in groups for s in g)
    assert all(s.finish_reason in ("stop", "length") for g in groups for s in g)

    again = sample(
        CompletionsClient(generator.url, api_token=generator.token, prompts_per_request=2), PROMPTS, 3, params
    )
    assert again == groups  # seeded: the whole call is reproducible


def test_each_chunk_gets_its_own_seed(generator: Generator) -> None:
    client = CompletionsClient(generator.url, api_token=generator.token, prompts_per_request=1)
    groups = sample(client, ["Same prompt"] * 3, 2, SamplingParams(max_tokens=10, seed=9))
    texts = [[s.text for s in group] for group in groups]
    assert texts[0] != texts[1] != texts[2]  # the same prompt, three chunks, three random streams


def test_rejected_requests_raise_at_once(generator: Generator) -> None:
    client = CompletionsClient(generator.url, api_token=generator.token, retry_seconds=30)
    started = time.monotonic()
    with pytest.raises(ComponentRejected) as rejected:
        sample(client, ["x"], LIMITS["max_n"] + 1, SamplingParams(max_tokens=2))
    assert rejected.value.status_code == 422 and rejected.value.component == "generator"
    assert rejected.value.detail[0]["loc"] == ["body", "n"]
    assert time.monotonic() - started < 10  # a 4xx is not retried

    with pytest.raises(ComponentRejected) as unauthorised:
        sample(CompletionsClient(generator.url, api_token="wrong"), ["x"], 1, SamplingParams())
    assert unauthorised.value.status_code == 401


def test_unreachable_generator_raises_component_unavailable_after_the_retry_window() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = CompletionsClient(url, retry_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(ComponentUnavailable) as unavailable:
        sample(client, ["x"], 1, SamplingParams())
    assert unavailable.value.component == "generator"
    assert url in unavailable.value.url
    assert 1.0 <= unavailable.value.waited_s < 10 and time.monotonic() - started >= 1.0
