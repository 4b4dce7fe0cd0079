"""Runs over several generator and rewarder replicas (orchestrator/replicas.py), on real services:
sampling spread over the replicas with the same samples as one replica gives, every checkpoint loaded
into each, and a dead replica dropped while the run goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


@pytest.fixture(scope="module")
def replicas(stack) -> Iterator[dict[str, list]]:
    """Two more generators and one more rewarder beside the stack's own."""
    generators = [
        stack.start_service("services.generator", stack.models["policy"], f"gen-r{i}") for i in (1, 2)
    ]
    rewarder = stack.start_service("services.rewarder", stack.models["reward"], "rew-r1")
    yield {"generators": generators, "rewarders": [rewarder]}
    for process, _ in [*generators, rewarder]:
        process.stop()


def samples_served(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("generator_samples_total")
    )


def test_a_run_spreads_sampling_over_replicas_and_loads_every_checkpoint_into_each(
    stack, replicas, tmp_path: Path
) -> None:
    urls = [url for _, url in replicas["generators"]]
    rewarders = [stack.rewarder_url, replicas["rewarders"][0][1]]
    before = [samples_served(url) for url in urls]
    # 4 prompts per request: an iteration's 16 prompts are 4 calls to spread over the replicas
    process, orchestrator = stack.start_orchestrator(
        tmp_path / "two",
        env={
            "ORCHESTRATOR_SAMPLE_CHUNK_PROMPTS": "4",
            "ORCHESTRATOR_SCORE_CHUNK_ITEMS": "16",
            "ORCHESTRATOR_ALLOWED_SERVICE_URLS": json.dumps([*urls, *rewarders]),
        },
    )
    try:
        body = stack.minimal_body(
            num_iterations=2, prompts_per_iteration=16, generator_urls=urls, rewarder_urls=rewarders
        )
        created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
        assert created.status_code == 202, created.text
        view = stack.wait(orchestrator, created.json()["id"], {"succeeded", "failed", "cancelled"})
        assert view["status"] == "succeeded", view["error"]

        # the same first iteration through the stack's one generator and one rewarder
        single = stack.minimal_body(num_iterations=1, prompts_per_iteration=16)
        one = httpx.post(f"{orchestrator}/iterations", json=single, timeout=30).json()["id"]
        one_view = stack.wait(orchestrator, one, {"succeeded", "failed", "cancelled"})
        assert one_view["status"] == "succeeded", one_view["error"]
    finally:
        process.stop()
    # every replica sampled
    after = [samples_served(url) for url in urls]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    # each replica serves the run's last checkpoint
    last = view["iterations"][-1]["checkpoint"]
    for url in urls:
        assert httpx.get(f"{url}/v1/models", timeout=10).json()["checkpoint"] == last
    # same seeds per chunk, whichever replica drew it: the samples equal the one-replica run's
    runs = tmp_path / "two" / "artifacts" / "runs"
    two = json.loads((runs / created.json()["id"] / "iter-000" / "samples.json").read_text())
    single_samples = json.loads((runs / one / "iter-000" / "samples.json").read_text())
    assert two == single_samples


def test_a_dead_replica_is_dropped_and_the_run_completes(stack, replicas, tmp_path: Path) -> None:
    (dead, dead_url), (_, live_url) = replicas["generators"]
    dead.kill()
    process, orchestrator = stack.start_orchestrator(
        tmp_path,
        env={
            "ORCHESTRATOR_RETRY_SECONDS": "3",
            "ORCHESTRATOR_ALLOWED_SERVICE_URLS": json.dumps([dead_url, live_url]),
        },
    )
    try:
        body = stack.minimal_body(num_iterations=1, generator_urls=[dead_url, live_url])
        created = httpx.post(f"{orchestrator}/iterations", json=body, timeout=30)
        view = stack.wait(orchestrator, created.json()["id"], {"succeeded", "failed", "cancelled"})
    finally:
        process.stop()
    assert view["status"] == "succeeded", view["error"]
    log = process.log_path.read_text()
    assert "generator replica" in log and "dropped, 1 left" in log
    assert httpx.get(f"{live_url}/v1/models", timeout=10).json()["checkpoint"] == view["policy"]
