"""The tgi backend and TGISamplerClient, with the shared generator standing in as the TGI server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from raftflow.clients.errors import ComponentRejected, ComponentUnavailable
from raftflow.clients.tgi_sampler import TGISamplerClient
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.server import free_port
from tests.generator.conftest import LIMITS, TOKEN, Generator, start_generator

PROMPTS = ["The quick brown fox", "Life is"]


@pytest.fixture(scope="module")
def fronted(generator: Generator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generator]:
    """A generator whose sampling is forwarded to the shared one through the TGI API."""
    server = start_generator(
        tmp_path_factory.mktemp("tgi-backend-logs"),
        "--backend",
        "tgi",
        "--tgi-url",
        generator.url,
        "--tgi-concurrency",
        "4",
        env={"GENERATOR_TGI_API_TOKEN": TOKEN},
    )
    yield server
    server.process.stop()


def tgi_sample(
    url: str, prompts: list[str], n: int, params: SamplingParams, **kwargs: object
) -> list[list[Sample]]:
    async def run() -> list[list[Sample]]:
        async with TGISamplerClient(url, **kwargs) as client:
            return await client.sample(prompts, n, params)

    return asyncio.run(run())


def test_completions_through_the_tgi_backend(fronted: Generator, generator: Generator) -> None:
    body = {"prompt": PROMPTS, "n": 3, "max_tokens": 8, "seed": 17, "stop": ["\n"]}
    served_before = generator.metric("generator_http_requests_total", route="/", status="200")
    response = fronted.complete(**body)
    choices = response["choices"]
    assert [c["index"] for c in choices] == list(range(6))
    assert [c["prompt_index"] for c in choices] == [0, 0, 0, 1, 1, 1]
    assert all(1 <= c["completion_tokens"] <= 8 and "\n" not in c["text"] for c in choices)
    assert len({c["text"] for c in choices[:3]}) > 1  # K independent seeded samples, not one repeated
    # Fanned out: one TGI request per sample.
    assert generator.metric("generator_http_requests_total", route="/", status="200") - served_before == 6
    # The model field names what TGI serves.
    info = httpx.get(generator.url + "/info").json()
    assert info["model_id"] in response["model"]
    # Deterministic, and the same samples as the orchestrator's own TGI client would get.
    assert [c["text"] for c in fronted.complete(**body)["choices"]] == [c["text"] for c in choices]
    params = SamplingParams(max_tokens=8, seed=17, stop=["\n"])
    direct = tgi_sample(generator.url, PROMPTS, 3, params, api_token=TOKEN)
    assert [s.text for group in direct for s in group] == [c["text"] for c in choices]


def test_greedy_sends_one_request_per_prompt(generator: Generator) -> None:
    before = generator.metric("generator_http_requests_total", route="/", status="200")
    groups = tgi_sample(
        generator.url, PROMPTS, 4, SamplingParams(max_tokens=5, temperature=0), api_token=TOKEN
    )
    assert generator.metric("generator_http_requests_total", route="/", status="200") - before == 2
    assert all(len(group) == 4 and len({s.text for s in group}) == 1 for group in groups)


def test_tgi_backend_cannot_hot_reload_and_reports_health(fronted: Generator) -> None:
    response = fronted.post("/v1/load", {"path": "/some/checkpoint"})
    assert response.status_code == 409
    assert "restart TGI" in response.json()["detail"]
    assert httpx.get(fronted.url + "/health").status_code == 200


def test_tgi_client_failures_are_typed(generator: Generator) -> None:
    with pytest.raises(ComponentRejected) as rejected:
        tgi_sample(
            generator.url, ["x"], 1, SamplingParams(max_tokens=LIMITS["max_tokens"] + 1), api_token=TOKEN
        )
    assert rejected.value.status_code == 422 and "max_new_tokens" in str(rejected.value.detail)

    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ComponentUnavailable) as unavailable:
        tgi_sample(dead, ["x"], 2, SamplingParams(max_tokens=2), retry_seconds=0.5)
    assert unavailable.value.url == dead and unavailable.value.waited_s >= 0.5
