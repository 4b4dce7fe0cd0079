"""A cancelled request stops computing, on each engine: its queued batches are dropped, a running
``generate`` stops at its next token, and the vllm engine closes its request to vLLM (which aborts it).

The end-to-end version (several abandoned 4 x 64 x 240-token requests against a generator process, then
a small request answered at once; a cancelled RAFT run) is tests/reliability/test_abandoned_requests.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from raftflow.server import free_port
from services.generator.engine import GenerationJob
from services.generator.settings import GeneratorSettings
from services.generator.telemetry import GeneratorTelemetry
from tests.generator.conftest import Generator

PROMPTS = ["Life is", "Never", "The sea and the wind", "A cat"]
# Two generate calls of 128 rows x 240 tokens under the default token budget: seconds each here.
LONG = GenerationJob(prompts=PROMPTS, n=64, max_new_tokens=240, min_new_tokens=240, top_k=0, seed=1)
SMALL = GenerationJob(prompts=["Hello"], n=1, max_new_tokens=4, seed=2)


def sample_value(telemetry: GeneratorTelemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


def test_cancelled_requests_stop_their_running_batch_and_drop_their_queued_one(
    tiny_models: dict[str, Path],
) -> None:
    """Two long requests: A's first batch runs, B's waits on the worker. Cancelling both stops A's
    batch at its next token and B's never runs; a small request is then answered at once."""
    from services.generator.engine.transformers_engine import TransformersEngine

    telemetry = GeneratorTelemetry()
    engine = TransformersEngine(GeneratorSettings(model=str(tiny_models["policy"])), telemetry)

    async def scenario() -> float:
        await engine.start()
        try:
            running = asyncio.ensure_future(engine.generate(LONG))
            await asyncio.sleep(0.3)  # A's first batch is on the worker
            queued = asyncio.ensure_future(engine.generate(LONG))
            await asyncio.sleep(0.5)  # B's first batch is queued behind it
            queued.cancel()
            running.cancel()
            started = time.monotonic()
            output = await engine.generate(SMALL)
            small_s = time.monotonic() - started
            assert len(output.samples[0]) == 1
            for task in (running, queued):
                with pytest.raises(asyncio.CancelledError):
                    await task
            return small_s
        finally:
            await engine.close()

    small_s = asyncio.run(scenario())
    assert small_s < 2.0, f"the small request waited {small_s:.1f} s behind cancelled work"
    assert sample_value(telemetry, "generator_stopped_batches_total") == 1  # A's; B's never started
    assert sample_value(telemetry, "generator_batch_rows_count") == 1  # the small request's call only


def test_a_client_that_disconnects_cancels_its_request(generator: Generator) -> None:
    """The shared server (token budget 2048: a 32 x 16 x 64 request is 32 calls, seconds in all): a
    client giving up after 0.5 s takes its remaining calls with it, and the request counts say 499."""
    calls = generator.metric("generator_batch_rows_count")
    cancelled = generator.metric("generator_cancelled_requests_total", work="generate")
    abandoned = generator.metric("generator_http_requests_total", route="/v1/completions", status="499")
    body = {"prompt": [f"prompt {i}" for i in range(32)], "n": 16, "max_tokens": 64, "min_tokens": 64}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(generator.url + "/v1/completions", json=body, headers=generator.headers, timeout=0.5)

    deadline = time.monotonic() + 5
    while generator.metric("generator_generations_in_progress") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert generator.metric("generator_generations_in_progress") == 0
    ran = generator.metric("generator_batch_rows_count") - calls
    time.sleep(0.5)
    assert generator.metric("generator_batch_rows_count") - calls == ran  # nothing more runs for it
    assert ran < 32
    assert generator.metric("generator_cancelled_requests_total", work="generate") == cancelled + 1
    assert (
        generator.metric("generator_http_requests_total", route="/v1/completions", status="499")
        == abandoned + 1
    )
    generator.complete(prompt="Hello", max_tokens=4)  # and it serves on


class StubVLLM:
    """Just enough of vLLM's OpenAI server for the engine to attach: its model card, and a
    ``/v1/completions`` that never answers, recording when its client hangs up (vLLM's own handler
    aborts the request then: ``with_cancellation`` in vllm/entrypoints/utils.py)."""

    def __init__(self, checkpoint: Path) -> None:
        self.received = threading.Event()
        self.disconnected = threading.Event()
        self.app = FastAPI()

        @self.app.get("/v1/models")
        def models() -> dict:
            return {"data": [{"id": "stub", "root": str(checkpoint), "max_model_len": 256}]}

        @self.app.post("/v1/completions")
        async def completions(request: Request) -> dict:
            await request.body()
            self.received.set()
            while (await request.receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()
            return {}


@pytest.fixture
def stub_vllm(tiny_models: dict[str, Path]) -> Iterator[tuple[StubVLLM, str]]:
    stub = StubVLLM(tiny_models["policy"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(stub.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield stub, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_the_vllm_engine_closes_its_vllm_request_when_cancelled(
    stub_vllm: tuple[StubVLLM, str], tiny_models: dict[str, Path]
) -> None:
    from services.generator.engine.vllm_engine import VLLMEngine

    stub, url = stub_vllm
    settings = GeneratorSettings(backend="vllm", vllm_url=url, model=str(tiny_models["policy"]))
    engine = VLLMEngine(settings, GeneratorTelemetry())

    async def scenario() -> float:
        await engine.start()
        try:
            task = asyncio.ensure_future(engine.generate(LONG))
            assert await asyncio.to_thread(stub.received.wait, 10)
            task.cancel()
            cancelled_at = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.to_thread(stub.disconnected.wait, 5)
            hung_up_after = time.monotonic() - cancelled_at
            async with asyncio.timeout(2), engine._gate.exclusive():
                pass  # the request left the gate: a checkpoint load would not wait for it
            return hung_up_after
        finally:
            await engine.close()

    assert asyncio.run(scenario()) < 2.0
