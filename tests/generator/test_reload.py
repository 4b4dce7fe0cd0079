"""Hot reload: POST /v1/load swaps checkpoints atomically while a request is running, a failed load
keeps the old model, and /v1/models reports checkpoint, version and load count."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftflow.clients.errors import ComponentRejected
from raftflow.clients.generator import CompletionsClient
from raftflow.modeling import checkpoint_version
from tests.generator.conftest import Generator, limit_flags, perturbed_checkpoint, start_generator

# A tiny token budget turns the long request into dozens of generate calls: a wide window for the
# reload to land in the middle of it.
LONG = {"prompt": [f"Request number {i} says" for i in range(16)], "n": 4, "max_tokens": 48, "seed": 21}
SHORT = {"prompt": ["Hello", "Goodbye"], "n": 2, "max_tokens": 12, "seed": 5}


@pytest.fixture(scope="module")
def checkpoints(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    broken = root / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    return {
        "old": tiny_models["policy"],
        "new": perturbed_checkpoint(tiny_models["policy"], root / "policy-step-1"),
        "broken": broken,
    }


@pytest.fixture(scope="module")
def server(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generator]:
    roots = [checkpoints["new"].parent, checkpoints["old"].parent]
    generator = start_generator(
        tmp_path_factory.mktemp("reload-logs"),
        "--model",
        str(checkpoints["old"]),
        *limit_flags(token_budget=128),
        env={"GENERATOR_LOAD_ROOTS": json.dumps([str(root) for root in roots])},
    )
    yield generator
    generator.process.stop()


def texts(response: dict) -> list[str]:
    return [choice["text"] for choice in response["choices"]]


def load(server: Generator, path: Path | str) -> dict:
    async def run() -> dict:
        async with CompletionsClient(server.url, api_token=server.token, retry_seconds=5) as client:
            return await client.load_checkpoint(str(path))

    return asyncio.run(run())


def models(server: Generator) -> dict:
    async def run() -> dict:
        async with CompletionsClient(server.url, api_token=server.token) as client:
            return await client.models()

    return asyncio.run(run())


def test_reload_swaps_after_in_flight_requests_and_failed_loads_change_nothing(
    server: Generator, checkpoints: dict[str, Path]
) -> None:
    old_version = checkpoint_version(str(checkpoints["old"]))
    new_version = checkpoint_version(str(checkpoints["new"]))
    assert old_version != new_version
    before = models(server)
    assert (before["version"], before["load_count"]) == (old_version, 1)
    assert before["data"][0]["root"] == str(checkpoints["old"])

    reference_long = server.complete(**LONG)
    reference_short = server.complete(**SHORT)

    # The long request again, with a reload landing while it runs.
    result: dict = {}

    def run_long() -> None:
        result["response"] = server.complete(**LONG)
        result["finished"] = time.monotonic()

    worker = threading.Thread(target=run_long)
    worker.start()
    deadline = time.monotonic() + 30
    while server.metric("generator_generations_in_progress") < 1:
        assert time.monotonic() < deadline, "the long request never started"
        time.sleep(0.02)
    report = load(server, checkpoints["new"])
    loaded = time.monotonic()
    worker.join(timeout=120)

    assert report["version"] == new_version and report["previous_version"] == old_version
    assert report["load_count"] == 2
    assert loaded < result["finished"], "the load did not complete while the long request was running"
    # The in-flight request finished entirely on the old weights: same samples, old version.
    assert result["response"]["model"] == reference_long["model"]
    assert old_version in result["response"]["model"]
    assert texts(result["response"]) == texts(reference_long)

    # New requests see the new weights.
    after = server.complete(**SHORT)
    assert new_version in after["model"]
    assert texts(after) != texts(reference_short)
    current = models(server)
    assert (current["version"], current["load_count"]) == (new_version, 2)
    assert current["data"][0]["id"] == after["model"]

    # Failed loads: a clear 422 naming the path; the new model keeps serving.
    missing = checkpoints["new"].parent / "no-such-step"
    for bad, reason in (
        (missing, "no checkpoint directory"),
        (checkpoints["broken"], "not a valid JSON file"),
        (checkpoints["new"].parent / ".." / "..", "outside the allowed roots"),
        ("gpt2", "outside the allowed roots"),  # hub ids are refused once roots are configured
    ):
        with pytest.raises(ComponentRejected) as rejected:
            load(server, bad)
        assert rejected.value.status_code == 422
        (error,) = rejected.value.detail
        assert error["loc"] == ["body", "path"]
        assert str(bad) in error["msg"] and reason in error["msg"]
    assert server.metric("generator_model_loads_total", outcome="failed") == 2  # the two that were tried
    assert models(server)["load_count"] == 2
    assert texts(server.complete(**SHORT)) == texts(after)

    # Back to the first checkpoint: the same seed gives the very same samples as before.
    load(server, checkpoints["old"])
    assert texts(server.complete(**SHORT)) == texts(reference_short)
    assert models(server)["load_count"] == 3


def test_sleep_is_vllms_and_a_409_here(server: Generator) -> None:
    """The transformers engine has no sleep mode: a 409 that names the engine that has one."""
    response = server.post("/v1/sleep", {"level": 1})
    assert response.status_code == 409
    assert "--backend vllm" in response.json()["detail"]
    assert server.post("/v1/sleep", {"level": 3}).status_code == 422
