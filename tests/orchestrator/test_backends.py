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
