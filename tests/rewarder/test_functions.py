"""The ``module:function`` reward source over real HTTP: the shipped VADER reward, and a buggy
function whose failure stays confined to the request that triggered it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from raftflow.clients.errors import ComponentUnavailable
from raftflow.clients.rewarder import RewarderClient
from raftflow.rewards.sentiment import vader_compound
from tests.rewarder.conftest import Rewarder, running_rewarder

VADER = "raftflow.rewards.sentiment:vader_positivity"


@pytest.fixture(scope="module")
def vader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rewarder]:
    with running_rewarder(tmp_path_factory.mktemp("rewarder-vader"), "--function", VADER) as server:
        yield server


@pytest.fixture(scope="module")
def buggy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rewarder]:
    with running_rewarder(
        tmp_path_factory.mktemp("rewarder-buggy"),
        "--function", "tests.rewarder.reward_fns:explode_on_boom",
        "--max-wait-ms", "50",
    ) as server:  # fmt: skip
        yield server


def test_vader_scores_the_response_positive_above_negative(vader: Rewarder):
    prompt = "How was your holiday?"
    responses = ["It was wonderful, I loved every minute!", "It was awful and I hated it.", "It rained."]
    scores = vader.scores({"inputs": [{"prompt": prompt, "response": r} for r in responses]})
    assert scores == pytest.approx([vader_compound(r) for r in responses], abs=1e-12)
    assert scores[0] > 0.5 > -0.5 > scores[1]


def test_vader_ignores_the_prompts_sentiment(vader: Rewarder):
    response = "The train left on time."
    prompts = [
        "What a terrible, horrible, sad day. What happened?",
        "What a great, happy day! What happened?",
    ]
    scores = vader.scores({"inputs": [{"prompt": p, "response": response} for p in prompts]})
    assert scores[0] == scores[1] == pytest.approx(vader_compound(response), abs=1e-12)


def test_texts_are_scored_whole(vader: Rewarder):
    text = "\n\nHuman: Say something nice.\n\nAssistant: You are brilliant and kind."
    assert vader.scores({"texts": [text]}) == pytest.approx([vader_compound(text)], abs=1e-12)


def test_get_reward_splits_query_at_the_prompt(vader: Rewarder):
    prompt = "Awful, terrible question:"
    answer = vader.post(
        "/get_reward", {"query": [prompt + " happy days", "happy days"], "prompts": [prompt, "x"]}
    )
    rewards = answer.json()["rewards"]
    assert rewards[0] == pytest.approx(vader_compound(" happy days"), abs=1e-12)  # response only
    assert rewards[1] == pytest.approx(vader_compound("happy days"), abs=1e-12)  # no split: whole query


def test_info_describes_a_function_source(vader: Rewarder):
    info = vader.get("/info").json()
    assert (info["source"], info["model"], info["format"]) == ("function", VADER, "hh")
    assert info["max_length"] is None and info["device"] is None
    assert len(info["version"]) == 12


def test_a_failing_function_fails_only_its_own_request(buggy: Rewarder):
    bodies = [
        {"texts": ["a lovely day"]},
        {"texts": ["BOOM goes the function"]},
        {"texts": ["sad news", "ok"]},
    ]

    async def send_together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=buggy.url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/score", json=body) for body in bodies))

    good, bad, also_good = asyncio.run(send_together())  # coalesced into one batch within 50 ms
    assert bad.status_code == 500
    assert "explode_on_boom failed: RuntimeError: BOOM in the input" in bad.json()["detail"]
    assert good.status_code == also_good.status_code == 200
    assert good.json()["scores"] == pytest.approx([vader_compound("a lovely day")])
    assert also_good.json()["scores"] == pytest.approx([vader_compound("sad news"), vader_compound("ok")])
    assert buggy.process.alive() and buggy.get("/health").status_code == 200
    assert buggy.metric("rewarder_http_requests_total", 'route="/score",status="500"') == 1


def test_the_client_retries_a_5xx_then_gives_up(buggy: Rewarder):
    async def call() -> None:
        async with RewarderClient(buggy.url, retry_seconds=1.0) as client:
            await client.score_texts(["BOOM"])

    with pytest.raises(ComponentUnavailable) as caught:
        asyncio.run(call())
    assert caught.value.component == "rewarder"
    assert caught.value.waited_s >= 0.5
    assert buggy.metric("rewarder_http_requests_total", 'route="/score",status="500"') >= 2
