"""The loop's adapters to the services: what a run pointed at the wrong kind of generator says."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.backends import GeneratorPolicyServer, NotARaftflowGenerator


class OpenAIServerModels:
    """What vLLM's (or any OpenAI server's) /v1/models answers: a list, no checkpoint, no /v1/load."""

    base_url = "http://vllm:8000"
    loads: list[str] = []

    async def models(self) -> dict:
        return {"object": "list", "data": [{"id": "base", "object": "model", "max_model_len": 2048}]}

    async def load_checkpoint(self, path: str) -> dict:
        self.loads.append(path)
        raise AssertionError("a server without /v1/load must not be asked to load")


def test_a_plain_vllm_url_fails_the_run_saying_what_to_run_instead() -> None:
    server = GeneratorPolicyServer(OpenAIServerModels())  # type: ignore[arg-type]
    with pytest.raises(NotARaftflowGenerator, match="--backend vllm --vllm-url") as raised:
        asyncio.run(server.ensure_loaded("runs/r1/iter-1"))
    assert "http://vllm:8000" in str(raised.value)
    assert OpenAIServerModels.loads == []


def test_a_run_keeps_each_clients_requests_in_flight_per_replica(monkeypatch) -> None:
    """A stage chunk is one request (the clients are built with the stage's chunk size), so the loop
    itself keeps the generator client's requests in flight: 2 per generator replica; scoring sends one
    request per rewarder replica (coalesced batches would change rewards in their last bits)."""
    from contextlib import AsyncExitStack

    from orchestrator.backends import open_backends
    from orchestrator.settings import OrchestratorSettings
    from raftflow.chunks import GENERATOR_REQUESTS_IN_FLIGHT
    from raftflow.schemas.runs import RunRequest

    monkeypatch.setenv("RAFTFLOW_ALLOW_NO_AUTH", "1")
    settings = OrchestratorSettings(
        sample_chunk_prompts=8,
        score_chunk_items=32,
        allowed_service_urls=["http://g:1", "http://g:2", "http://r:1", "http://r:2", "http://r:3"],
    )

    async def build(generators: list[str], rewarders: list[str]):
        request = RunRequest(
            policy="p", prompts="prompts.json", generator_urls=generators, rewarder_urls=rewarders
        )
        async with AsyncExitStack() as stack:
            backends = await open_backends(settings, request, stack)
            clients = getattr(backends.sampler, "alive", None) or [backends.policy_server]
            sizes = {server.client.prompts_per_request for server in clients}
            return backends.sample_concurrency, backends.score_concurrency, sizes

    one = asyncio.run(build(["http://g:1"], ["http://r:1"]))
    assert one == (GENERATOR_REQUESTS_IN_FLIGHT, 1, {8})
    two = asyncio.run(build(["http://g:1", "http://g:2"], ["http://r:1", "http://r:2", "http://r:3"]))
    assert two == (2 * GENERATOR_REQUESTS_IN_FLIGHT, 3, {8})


def test_a_replica_pool_gives_each_replica_its_requests_in_flight_and_spreads_first() -> None:
    from orchestrator.replicas import ReplicaPool

    running: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    first_two: list[str] = []

    async def call(replica: str) -> str:
        if len(first_two) < 2:
            first_two.append(replica)
        running[replica] += 1
        peak[replica] = max(peak[replica], running[replica])
        await asyncio.sleep(0.005)
        running[replica] -= 1
        return replica

    async def main() -> list[str]:
        pool = ReplicaPool(["a", "b"], str, "generator", in_flight=2)
        return await asyncio.gather(*(pool.call(call) for _ in range(12)))

    served = asyncio.run(main())
    assert sorted(first_two) == ["a", "b"]  # both replicas busy before either gets a second call
    assert peak == {"a": 2, "b": 2}
    assert served.count("a") == served.count("b") == 6
