"""Bad input gets a 422 that names the field (and the limit, for configured ones), and the service
keeps serving. A function-backed rewarder with tight limits: validation does not depend on the source."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.rewarder.conftest import Rewarder, running_rewarder

MAX_ITEMS = 4
MAX_CHARS = 200
MAX_BODY = 4096


@pytest.fixture(scope="module")
def rewarder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rewarder]:
    with running_rewarder(
        tmp_path_factory.mktemp("rewarder-validation"),
        "--function", "raftflow.rewards.sentiment:vader_positivity",
        "--max-items", str(MAX_ITEMS),
        "--max-text-chars", str(MAX_CHARS),
        env={"RAFTFLOW_MAX_BODY_BYTES": str(MAX_BODY)},
    ) as server:  # fmt: skip
        yield server


PAIR = {"prompt": "Hi", "response": "Hello!"}
LONG = "x" * (MAX_CHARS + 1)

# (path, body, loc of the first error, fragments its message must contain)
CASES = [
    ("/score", {}, ["body"], ["exactly one of 'inputs' or 'texts'"]),
    ("/score", {"inputs": [PAIR], "texts": ["a"]}, ["body"], ["exactly one of 'inputs' or 'texts'"]),
    ("/score", {"texts": []}, ["body", "texts"], ["at least 1 item"]),
    ("/score", {"inputs": []}, ["body", "inputs"], ["at least 1 item"]),
    ("/score", {"texts": ["a"] * (MAX_ITEMS + 1)}, ["body", "texts"], ["5 items", f"max_items={MAX_ITEMS}"]),
    ("/score", {"inputs": [PAIR] * (MAX_ITEMS + 1)}, ["body", "inputs"], [f"max_items={MAX_ITEMS}"]),
    ("/score", {"texts": ["ok", LONG]}, ["body", "texts", 1], [f"max_text_chars={MAX_CHARS}"]),
    (
        "/score",
        {"inputs": [PAIR, {"prompt": LONG, "response": "r"}]},
        ["body", "inputs", 1, "prompt"],
        [f"{MAX_CHARS + 1} characters", f"max_text_chars={MAX_CHARS}"],
    ),
    (
        "/score",
        {"inputs": [{"prompt": "p", "response": LONG}]},
        ["body", "inputs", 0, "response"],
        [f"max_text_chars={MAX_CHARS}"],
    ),
    ("/score", {"texts": ["ok", 3]}, ["body", "texts", 1], ["valid string"]),
    ("/score", {"texts": "not a list"}, ["body", "texts"], ["valid list"]),
    (
        "/score",
        {"inputs": [{"prompt": 1, "response": "r"}]},
        ["body", "inputs", 0, "prompt"],
        ["valid string"],
    ),
    ("/score", {"inputs": [{"prompt": "p"}]}, ["body", "inputs", 0, "response"], ["Field required"]),
    ("/score", {"texts": ["a"], "temperature": 1}, ["body", "temperature"], ["Extra inputs"]),
    ("/score", {"texts": ["a"], "normalize": True}, ["body", "normalize"], ["calibration"]),
    ("/score", {"texts": ["a"], "normalize": "maybe"}, ["body", "normalize"], ["valid boolean"]),
    ("/get_reward", {"query": []}, ["body", "query"], ["at least 1 item"]),
    ("/get_reward", {"prompts": ["p"]}, ["body", "query"], ["Field required"]),
    ("/get_reward", {"query": ["a", "b"], "prompts": ["p"]}, ["body"], ["one entry per query"]),
    ("/get_reward", {"query": ["a"] * (MAX_ITEMS + 1)}, ["body", "query"], [f"max_items={MAX_ITEMS}"]),
    ("/get_reward", {"query": [LONG]}, ["body", "query", 0], [f"max_text_chars={MAX_CHARS}"]),
    ("/get_reward", {"query": ["a"], "prompts": [LONG]}, ["body", "prompts", 0], ["max_text_chars"]),
]


@pytest.mark.parametrize(("path", "body", "loc", "fragments"), CASES)
def test_bad_input_is_a_422_naming_the_field(
    rewarder: Rewarder, path: str, body: dict, loc: list, fragments: list[str]
):
    response = rewarder.post(path, body)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == loc
    for fragment in fragments:
        assert fragment in error["msg"]


def test_configured_limits_carry_the_limit_in_ctx(rewarder: Rewarder):
    error = rewarder.post("/score", {"texts": ["a"] * (MAX_ITEMS + 1)}).json()["detail"][0]
    assert error["ctx"] == {"limit": MAX_ITEMS, "setting": "REWARDER_MAX_ITEMS"}


def test_malformed_json_is_a_422(rewarder: Rewarder):
    response = httpx.post(
        rewarder.url + "/score", content=b'{"texts": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_a_body_over_the_byte_limit_is_a_413(rewarder: Rewarder):
    response = rewarder.post("/score", {"texts": ["y" * (MAX_BODY + 1)]})
    assert response.status_code == 413
    assert f"{MAX_BODY}-byte limit" in response.json()["detail"]
    assert rewarder.metric("rewarder_http_requests_total", 'route="/score",status="413"') == 1


def test_the_service_survives_all_of_it(rewarder: Rewarder):
    assert rewarder.process.alive()
    assert rewarder.get("/health").json() == {"status": "ok"}
    assert rewarder.scores({"texts": ["What a wonderful day!"]})[0] > 0.5
