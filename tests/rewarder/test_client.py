"""RewarderClient against a real rewarder: chunking keeps order, normalisation, errors mapped to
ComponentRejected / ComponentUnavailable, and waiting out a rewarder that is still starting. The
VADER function source keeps these servers quick to start; scores are checked against VADER itself."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftflow.clients.errors import ComponentRejected, ComponentUnavailable
from raftflow.clients.rewarder import RewarderClient
from raftflow.rewards.sentiment import vader_compound
from raftflow.server import free_port
from tests.rewarder.conftest import TOKEN, Rewarder, running_rewarder, write_jsonl

VADER = "raftflow.rewards.sentiment:vader_positivity"
CALIBRATION = [
    {"prompt": "How is it?", "response": "Great, really great."},
    {"prompt": "How is it?", "response": "Terrible."},
    {"prompt": "How is it?", "response": "It is a table."},
    "\n\nHuman: Hi\n\nAssistant: Lovely to see you!",
]


@pytest.fixture(scope="module")
def rewarder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rewarder]:
    log_dir = tmp_path_factory.mktemp("rewarder-client")
    calibration = write_jsonl(log_dir / "calibration.jsonl", CALIBRATION)
    with running_rewarder(
        log_dir,
        "--function",
        VADER,
        "--calibration-file",
        str(calibration),
        env={"RAFTFLOW_API_TOKEN": TOKEN},
    ) as server:
        yield server


RESPONSES = [
    "I love it!",
    "I hate it.",
    "It is fine.",
    "Best day ever, wonderful!",
    "Meh.",
    "Sad and lonely.",
    "Great job, thank you!",
    "No comment.",
    "Awful, dreadful, terrible.",
    "Quite nice actually.",
    "Okay.",
]
PROMPTS = [f"Question {i}?" for i in range(len(RESPONSES))]


def run(coro):
    return asyncio.run(coro)


def test_score_chunks_requests_and_keeps_order(rewarder: Rewarder):
    requests_before = rewarder.metric("rewarder_http_requests_total", 'route="/score",status="200"')

    async def call() -> list[float]:
        async with RewarderClient(rewarder.url, api_token=TOKEN, items_per_request=3) as client:
            return await client.score(PROMPTS, RESPONSES)

    scores = run(call())
    assert scores == pytest.approx([vader_compound(r) for r in RESPONSES], abs=1e-12)
    requests = rewarder.metric("rewarder_http_requests_total", 'route="/score",status="200"')
    requests -= requests_before
    assert requests == 4  # ceil(11 / 3)


def test_score_texts_and_info(rewarder: Rewarder):
    async def call() -> tuple[list[float], dict, list[float]]:
        async with RewarderClient(rewarder.url, api_token=TOKEN) as client:
            return await client.score_texts(RESPONSES[:3]), await client.info(), await client.score([], [])

    scores, info, empty = run(call())
    assert scores == pytest.approx([vader_compound(t) for t in RESPONSES[:3]], abs=1e-12)
    assert (info["source"], info["model"]) == ("function", VADER)
    assert empty == []


def test_normalize_uses_the_calibration_set(rewarder: Rewarder):
    reference = [vader_compound(e["response"] if isinstance(e, dict) else e) for e in CALIBRATION]
    mean, std = statistics.fmean(reference), statistics.pstdev(reference)

    async def call() -> list[float]:
        async with RewarderClient(rewarder.url, api_token=TOKEN) as client:
            return await client.score(PROMPTS[:4], RESPONSES[:4], normalize=True)

    expected = [(vader_compound(r) - mean) / std for r in RESPONSES[:4]]
    assert run(call()) == pytest.approx(expected, abs=1e-9)


def test_a_4xx_is_rejected_at_once(rewarder: Rewarder):
    async def call(token: str | None, texts: list[str]) -> None:
        async with RewarderClient(rewarder.url, api_token=token, retry_seconds=30) as client:
            await client.score_texts(texts)

    with pytest.raises(ComponentRejected) as unauthorised:
        run(call(None, ["hi"]))
    assert (unauthorised.value.component, unauthorised.value.status_code) == ("rewarder", 401)
    with pytest.raises(ComponentRejected) as too_long:
        run(call(TOKEN, ["x" * 70_000]))
    assert too_long.value.status_code == 422
    assert "max_text_chars=65536" in too_long.value.detail[0]["msg"]


def test_an_unreachable_rewarder_is_unavailable_after_the_retry_window():
    url = f"http://127.0.0.1:{free_port()}"

    async def call() -> None:
        async with RewarderClient(url, retry_seconds=1.0) as client:
            await client.score(["p"], ["r"])

    with pytest.raises(ComponentUnavailable) as caught:
        run(call())
    assert caught.value.component == "rewarder" and caught.value.url == url + "/score"
    assert 0.5 <= caught.value.waited_s < 10


def test_the_client_waits_for_a_rewarder_that_is_still_starting(tmp_path: Path):
    port = free_port()

    async def call() -> list[float]:
        async with RewarderClient(f"http://127.0.0.1:{port}", retry_seconds=60.0) as client:
            return await client.score_texts(["What a happy ending!"])

    with running_rewarder(tmp_path, "--function", VADER, port=port, wait=False):
        assert run(call()) == pytest.approx([vader_compound("What a happy ending!")], abs=1e-12)
