"""Bad input gets a 422 naming the field and the limit, auth guards the mutating routes, and the
service keeps serving afterwards."""

from __future__ import annotations

import httpx
import pytest

from tests.generator.conftest import LIMITS, MAX_BODY_BYTES, Generator

LONG_PROMPT = "word " * 300  # > 256 tokens, the tiny model's context

COMPLETIONS_CASES = [
    ({"prompt": []}, ("prompt",), "at least 1"),
    ({"prompt": ""}, ("prompt",), "at least 1"),
    ({"prompt": ["ok", ""]}, ("prompt",), "at least 1 character"),
    ({"prompt": 123}, ("prompt",), "valid string"),
    ({"prompt": "x", "n": 0}, ("n",), "greater than or equal to 1"),
    ({"prompt": "x", "n": "many"}, ("n",), "valid integer"),
    ({"prompt": "x", "n": LIMITS["max_n"] + 1}, ("n",), f"limit of {LIMITS['max_n']}"),
    (
        {"prompt": "x", "max_tokens": LIMITS["max_tokens"] + 1},
        ("max_tokens",),
        f"limit of {LIMITS['max_tokens']}",
    ),
    ({"prompt": ["x"] * (LIMITS["max_prompts"] + 1)}, ("prompt",), f"limit of {LIMITS['max_prompts']}"),
    ({"prompt": LONG_PROMPT}, ("prompt",), "context length of 256"),
    ({"prompt": ["ok", LONG_PROMPT]}, ("prompt", "1"), "context length of 256"),
    ({"prompt": "x", "max_tokens": 8, "min_tokens": 9}, (), "min_tokens (9) must be <= max_tokens (8)"),
    ({"prompt": "x", "temperature": -1}, ("temperature",), "greater than or equal to 0"),
    ({"prompt": "x", "top_p": 0}, ("top_p",), "greater than 0"),
    ({"prompt": "x", "seed": -1}, ("seed",), "greater than or equal to 0"),
    ({"prompt": "x", "stop": ["s"] * 5}, ("stop",), "at most 4"),
    ({"prompt": "x", "stop": ["s" * 65]}, ("stop", "0"), "at most 64"),
    ({"prompt": "x", "stream": True}, ("stream",), "not supported"),
    ({"prompt": "x", "logprobs": 6}, ("logprobs",), "less than or equal to 5"),
    ({"prompt": "x", "prompt_format": "chat_template"}, ("prompt_format",), "chat_template"),
    (
        {"prompt": "x", "prompt_format": "markdown"},
        ("prompt_format",),
        "'auto', 'hh', 'chat_template' or 'raw'",
    ),
]


@pytest.mark.parametrize(("body", "loc", "message"), COMPLETIONS_CASES)
def test_completions_rejects_bad_input(generator: Generator, body: dict, loc: tuple, message: str) -> None:
    response = generator.post("/v1/completions", body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(
        tuple(str(part) for part in error["loc"][1 : 1 + len(loc)]) == loc and message in error["msg"]
        for error in errors
    ), errors


TGI_CASES = [
    ({"inputs": ""}, "inputs", "at least 1 character"),
    ({"inputs": "x", "parameters": {"best_of": 2}}, "parameters", "needs sampling"),
    ({"inputs": "x", "parameters": {"best_of": LIMITS["max_n"] + 1, "do_sample": True}}, "best_of", "limit"),
    ({"inputs": "x", "parameters": {"top_p": 1.0}}, "top_p", "less than 1"),
    ({"inputs": "x", "parameters": {"max_new_tokens": 0}}, "max_new_tokens", "greater than or equal to 1"),
    ({"inputs": "x", "parameters": {"watermark": True}}, "watermark", "not supported"),
    ({"inputs": "x", "stream": True}, "stream", "not supported"),
    ({"inputs": LONG_PROMPT}, "inputs", "context length of 256"),
]


@pytest.mark.parametrize(("body", "field", "message"), TGI_CASES)
@pytest.mark.parametrize("path", ["/generate", "/"])
def test_tgi_routes_reject_bad_input_in_both_shapes(
    generator: Generator, path: str, body: dict, field: str, message: str
) -> None:
    response = generator.post(path, body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error_type"] == "validation"
    assert field in payload["error"] and message in payload["error"]
    assert any(field in [str(part) for part in error["loc"]] for error in payload["detail"])


def test_truncate_keeps_the_end_of_a_long_prompt(generator: Generator) -> None:
    body = {"inputs": LONG_PROMPT, "parameters": {"max_new_tokens": 4, "truncate": 100}}
    assert generator.post("/generate", body).status_code == 200


def test_mutating_routes_need_the_token_and_the_rest_stay_open(generator: Generator) -> None:
    bodies = {
        "/v1/completions": {"prompt": "x", "max_tokens": 2},
        "/generate": {"inputs": "x"},
        "/": {"inputs": "x"},
        "/v1/load": {"path": "/nonexistent"},
    }
    for path, body in bodies.items():
        assert httpx.post(generator.url + path, json=body).status_code == 401, path
        wrong = {"Authorization": "Bearer wrong"}
        assert httpx.post(generator.url + path, json=body, headers=wrong).status_code == 401, path
    for path in ("/health", "/info", "/metrics", "/v1/models"):
        assert httpx.get(generator.url + path).status_code == 200, path


def test_malformed_json_is_a_422_and_the_service_lives_on(generator: Generator) -> None:
    response = httpx.post(
        generator.url + "/v1/completions",
        content=b"{not json",
        headers={**generator.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert httpx.get(generator.url + "/health").status_code == 200
    assert generator.complete(prompt="still", max_tokens=2)["choices"]


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(generator: Generator) -> None:
    refused = {"route": "/v1/completions", "status": "413"}
    before = generator.metric("generator_http_requests_total", **refused)
    response = generator.post("/v1/completions", {"prompt": "x" * (MAX_BODY_BYTES + 1)})
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["detail"]
    # counted under its route although refused before routing, as every service does (the skeleton)
    assert generator.metric("generator_http_requests_total", **refused) == before + 1
    assert generator.complete(prompt="small", max_tokens=2)["choices"]
