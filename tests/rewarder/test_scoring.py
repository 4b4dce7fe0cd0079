"""The model-backed rewarder over real HTTP: scores equal a direct forward pass of the reward model,
whatever the batch composition or concurrency; explicit truncation; normalisation; the OpenRLHF alias;
auth; metrics. One server for the module (HH format: the tiny tokenizer has no chat template)."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from raftflow.conversation import render_pair
from raftflow.modeling import checkpoint_version
from tests.rewarder.conftest import (
    TOKEN,
    TOLERANCE,
    DirectModel,
    Rewarder,
    assert_close,
    expected_truncation,
    fortunes,
    running_rewarder,
    write_jsonl,
)

MAX_LENGTH = 64


@pytest.fixture(scope="module")
def texts(direct_model: DirectModel) -> list[str]:
    """Texts of varied length that fit in MAX_LENGTH tokens (no truncation)."""
    picked = [t for t in fortunes(60) if len(direct_model.ids(t)) <= MAX_LENGTH]
    assert len(picked) >= 12
    return picked[:12]


@pytest.fixture(scope="module")
def calibration_texts() -> list[str]:
    return fortunes(10, max_chars=120)


@pytest.fixture(scope="module")
def rewarder(
    tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, calibration_texts: list[str]
) -> Iterator[Rewarder]:
    log_dir = tmp_path_factory.mktemp("rewarder-model")
    calibration = write_jsonl(log_dir / "calibration.jsonl", calibration_texts)
    with running_rewarder(
        log_dir,
        "--model", str(tiny_models["reward"]),
        "--max-length", str(MAX_LENGTH),
        "--max-batch-size", "8",
        "--max-wait-ms", "20",
        "--calibration-file", str(calibration),
        env={"RAFTFLOW_API_TOKEN": TOKEN},
    ) as server:  # fmt: skip
        yield server


def test_texts_match_a_direct_forward_pass(rewarder: Rewarder, direct_model: DirectModel, texts: list[str]):
    response = rewarder.post("/score", {"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_close(body["scores"], [direct_model.score(t) for t in texts])
    assert body["truncated"] == [False] * len(texts)
    assert body["normalized"] is False
    assert body["model"] == rewarder.get("/info").json()["model"]


PAIRS = [
    {"prompt": "Tell me a joke.", "response": "Why did the chicken cross the road?"},
    {"prompt": "How are you?", "response": "Wonderful, thank you!"},
    {"prompt": "Describe the weather.", "response": "Grey, cold and wet."},
    {"prompt": "", "response": "An answer to nothing."},
]


def test_inputs_are_formatted_in_hh_form(rewarder: Rewarder, direct_model: DirectModel):
    pairs = PAIRS
    answer = rewarder.post("/score", {"inputs": pairs}).json()
    expected = [direct_model.score(f"\n\nHuman: {p['prompt']}\n\nAssistant: {p['response']}") for p in pairs]
    assert answer["truncated"] == [False] * 4
    assert_close(answer["scores"], expected)


def test_scores_do_not_depend_on_batch_composition(
    rewarder: Rewarder, direct_model: DirectModel, texts: list[str]
):
    direct = {t: direct_model.score(t) for t in texts}
    alone = [rewarder.scores({"texts": [t]})[0] for t in texts[:6]]
    together = rewarder.scores({"texts": texts})
    reversed_ = rewarder.scores({"texts": texts[::-1]})[::-1]
    shortest, longest = min(texts, key=len), max(texts, key=len)
    padded = rewarder.scores({"texts": [shortest, longest, shortest]})  # the short one padded hard
    assert_close(alone, [direct[t] for t in texts[:6]])
    assert_close(together, [direct[t] for t in texts])
    assert_close(reversed_, [direct[t] for t in texts])
    assert_close(padded, [direct[shortest], direct[longest], direct[shortest]])


def test_concurrent_requests_are_coalesced_and_scores_unchanged(
    rewarder: Rewarder, direct_model: DirectModel, texts: list[str]
):
    groups = [[texts[i % len(texts)], texts[(i * 5 + 3) % len(texts)]][: 1 + i % 2] for i in range(24)]
    batches_before = rewarder.metric("rewarder_batch_size_count")

    async def send_all() -> list[list[float]]:
        async with httpx.AsyncClient(base_url=rewarder.url, headers=rewarder.headers, timeout=60) as client:
            responses = await asyncio.gather(*(client.post("/score", json={"texts": g}) for g in groups))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        return [r.json()["scores"] for r in responses]

    served = asyncio.run(send_all())
    batches = rewarder.metric("rewarder_batch_size_count") - batches_before
    items = sum(map(len, groups))
    assert batches < len(groups), f"{len(groups)} concurrent requests ran as {batches} batches"
    for group, scores in zip(groups, served, strict=True):
        assert_close(scores, [direct_model.score(t) for t in group])
    assert items == sum(map(len, served))


def test_a_long_prompt_loses_its_start_and_keeps_the_response(rewarder: Rewarder, direct_model: DirectModel):
    body = " ".join(fortunes(40, min_chars=150)[:4])
    response = "What a lovely and thoughtful answer."
    prompts = {
        "base": body + " Tell me more.",
        "other_start": "Completely different opening words here. " + body + " Tell me more.",
        "other_end": body + " Tell me less.",
    }
    answer = rewarder.post(
        "/score", {"inputs": [{"prompt": p, "response": response} for p in prompts.values()]}
    ).json()
    scores = dict(zip(prompts, answer["scores"], strict=True))
    assert answer["truncated"] == [True, True, True]
    formatted = render_pair(prompts["base"], response, "hh")
    assert formatted.prompt_span is not None
    kept = expected_truncation(direct_model.tokenizer, formatted.text, formatted.prompt_span, MAX_LENGTH)
    assert direct_model.tokenizer.decode(kept).endswith("Tell me more.\n\nAssistant: " + response)
    assert direct_model.tokenizer.decode(kept).startswith("\n\nHuman:")
    assert abs(scores["base"] - direct_model.score_ids(kept)) <= TOLERANCE
    assert abs(scores["base"] - scores["other_start"]) <= TOLERANCE  # the cut start does not matter
    assert abs(scores["base"] - scores["other_end"]) > 1e-4  # the kept end does


def test_an_overlong_text_keeps_its_last_tokens(rewarder: Rewarder, direct_model: DirectModel):
    text = " ".join(fortunes(40, min_chars=150)[:3])
    ids = direct_model.ids(text)
    assert len(ids) > MAX_LENGTH
    answer = rewarder.post("/score", {"texts": [text, "short one"]}).json()
    assert answer["truncated"] == [True, False]
    assert abs(answer["scores"][0] - direct_model.score_ids(ids[-MAX_LENGTH:])) <= TOLERANCE


def test_normalize_standardises_with_the_calibration_set(
    rewarder: Rewarder, direct_model: DirectModel, texts: list[str], calibration_texts: list[str]
):
    calibration = rewarder.get("/info").json()["calibration"]
    reference = [direct_model.score(t) for t in calibration_texts]
    assert calibration["items"] == len(calibration_texts)
    assert abs(calibration["mean"] - statistics.fmean(reference)) <= TOLERANCE
    assert abs(calibration["std"] - statistics.pstdev(reference)) <= TOLERANCE
    answer = rewarder.post("/score", {"texts": texts[:5], "normalize": True}).json()
    assert answer["normalized"] is True
    raw = [direct_model.score(t) for t in texts[:5]]
    expected = [(r - calibration["mean"]) / calibration["std"] for r in raw]
    assert_close(answer["scores"], expected)


def test_get_reward_speaks_openrlhf(rewarder: Rewarder, direct_model: DirectModel, texts: list[str]):
    answer = rewarder.post("/get_reward", {"query": texts[:3], "labels": ["ignored"] * 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rewards"] == body["scores"]
    assert_close(body["rewards"], [direct_model.score(t) for t in texts[:3]])


def test_get_reward_with_prompts_truncates_the_prompt_first(rewarder: Rewarder):
    body = " ".join(fortunes(40, min_chars=150)[:4])
    prompts = [body + " Question?", "Other opening words. " + body + " Question?"]
    query = [p + " A fine and happy answer." for p in prompts]
    rewards = rewarder.post("/get_reward", {"query": query, "prompts": prompts}).json()["rewards"]
    assert abs(rewards[0] - rewards[1]) <= TOLERANCE


def test_a_text_with_no_tokens_is_rejected_by_name(rewarder: Rewarder):
    answer = rewarder.post("/score", {"texts": ["fine", ""]})
    assert answer.status_code == 422
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["body", "texts", 1]
    assert "zero tokens" in detail["msg"]


def test_scoring_needs_the_token_and_status_stays_open(rewarder: Rewarder):
    for path, body in (("/score", {"texts": ["x"]}), ("/get_reward", {"query": ["x"]})):
        assert rewarder.post(path, body, headers={}).status_code == 401
        assert rewarder.post(path, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    for path in ("/health", "/info", "/metrics"):
        assert rewarder.get(path, headers={}).status_code == 200
    # Without the token /info names the model by id, never by path.
    anonymous = rewarder.get("/info", headers={}).json()
    assert anonymous["model"] == f"reward@{anonymous['version']}"


def test_info_names_the_model_and_its_limits(rewarder: Rewarder, tiny_models: dict[str, Path]):
    info = rewarder.get("/info").json()
    assert info["model"] == str(tiny_models["reward"])
    assert info["version"] == checkpoint_version(str(tiny_models["reward"]))
    assert (info["source"], info["format"], info["max_length"]) == ("model", "hh", MAX_LENGTH)
    assert (info["max_batch_size"], info["max_wait_ms"], info["device"]) == (8, 20.0, "cpu")
    assert rewarder.post("/score", {"texts": ["x"]}).json()["version"] == info["version"]


def test_metrics_count_requests_items_and_batches(rewarder: Rewarder):
    before = {
        "ok": rewarder.metric("rewarder_http_requests_total", 'route="/score",status="200"'),
        "bad": rewarder.metric("rewarder_http_requests_total", 'route="/score",status="422"'),
        "items": rewarder.metric("rewarder_items_total", 'endpoint="/score"'),
        "batched": rewarder.metric("rewarder_batch_size_sum"),
    }
    assert rewarder.post("/score", {"texts": ["one", "two", "three"]}).status_code == 200
    assert rewarder.post("/score", {"texts": []}).status_code == 422
    assert rewarder.metric("rewarder_http_requests_total", 'route="/score",status="200"') == before["ok"] + 1
    assert rewarder.metric("rewarder_http_requests_total", 'route="/score",status="422"') == before["bad"] + 1
    assert rewarder.metric("rewarder_items_total", 'endpoint="/score"') == before["items"] + 3
    assert rewarder.metric("rewarder_batch_size_sum") == before["batched"] + 3
    assert rewarder.metric("rewarder_http_request_seconds_count", 'route="/score"') > 0
