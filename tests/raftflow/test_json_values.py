"""Values no field can mean (non-finite numbers, lone surrogates): found in decoded JSON, refused by the
service skeleton with a 422 naming the field (a real uvicorn server), and refused by the schemas."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from raftflow.json_values import first_bad_value, safe_echo
from raftflow.schemas.jobs import TrainingConfig
from raftflow.schemas.runs import RunRequest
from raftflow.server import free_port
from raftflow.server.app import create_service_app
from raftflow.settings import CommonSettings


@pytest.mark.parametrize(
    ("raw", "where", "kind"),
    [
        ('{"a": [1, {"b": NaN}]}', ("a", 1, "b"), "finite_number"),
        ('{"t": Infinity}', ("t",), "finite_number"),
        ('{"t": -Infinity}', ("t",), "finite_number"),
        ('{"t": 1e400}', ("t",), "finite_number"),
        ('{"p": ["ok", "x\\ud800y"]}', ("p", 1), "string_unicode"),
        ('{"\\udfff": 1}', ("\udfff",), "string_unicode"),
    ],
)
def test_bad_values_are_found_where_they_are(raw: str, where: tuple, kind: str) -> None:
    found = first_bad_value(json.loads(raw))
    assert found is not None and found[:2] == (where, kind)


def test_good_values_pass_and_a_surrogate_pair_is_one_character() -> None:
    value = json.loads('{"t": 1e300, "n": -0.0, "s": "\\ud83d\\ude00", "i": 10}')
    assert value["s"] == "\U0001f600"
    assert first_bad_value(value) is None


def test_safe_echo_makes_bad_values_printable() -> None:
    echoed = safe_echo({"x": [math.nan, math.inf, "a\ud800"]})
    assert json.dumps(echoed, allow_nan=False) == '{"x": ["nan", "inf", "a\\\\ud800"]}'


def test_schemas_refuse_non_finite_numbers_they_used_to_accept() -> None:
    for field in ("min_reward", "min_reward_margin"):
        with pytest.raises(ValidationError, match="finite number"):
            RunRequest(policy="p", prompts="x", **{field: math.inf})
    with pytest.raises(ValidationError, match="finite number"):
        TrainingConfig(max_grad_norm=math.inf)
    with pytest.raises(ValidationError, match="finite number"):
        RunRequest(policy="p", prompts="x", min_reward=math.nan)


class Body(BaseModel):
    temperature: float
    prompts: list[str]


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    """A service built by the real skeleton, with one route that echoes its body."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    router = APIRouter()

    @router.post("/echo")
    async def echo(body: Body) -> dict:
        return body.model_dump()

    settings = CommonSettings(allow_no_auth=True)
    app = create_service_app("test", settings, CollectorRegistry(), lifespan, protected=(router,))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.mark.parametrize(
    ("raw", "loc", "kind"),
    [
        ('{"temperature": NaN, "prompts": ["a"]}', ["body", "temperature"], "finite_number"),
        ('{"temperature": 1e400, "prompts": ["a"]}', ["body", "temperature"], "finite_number"),
        ('{"temperature": 1.0, "prompts": ["a", "\\ud800"]}', ["body", "prompts", 1], "string_unicode"),
        ('{"temperature": 1.0, "prompts": ["\\udc00"]}', ["body", "prompts", 0], "string_unicode"),
    ],
)
def test_the_skeleton_answers_422_naming_the_field(service_url: str, raw: str, loc: list, kind: str) -> None:
    response = httpx.post(
        service_url + "/echo", content=raw, headers={"content-type": "application/json"}, timeout=10
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert (detail["loc"], detail["type"]) == (loc, kind)
    assert response.json()["error"].startswith(".".join(str(p) for p in loc[1:]))


def test_valid_bodies_reach_the_route_unchanged(service_url: str) -> None:
    raw = '{"temperature": 0.7, "prompts": ["e\\u0301", "\\ud83d\\ude00 ok"]}'
    response = httpx.post(
        service_url + "/echo", content=raw, headers={"content-type": "application/json"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"temperature": 0.7, "prompts": ["e\u0301", "\U0001f600 ok"]}


def test_a_schema_422_echoing_an_unprintable_input_is_still_a_422(service_url: str) -> None:
    """A value the body check lets through (a string where a float is meant) is echoed by the schema's
    own 422; the handler must not crash on what it echoes."""
    response = httpx.post(service_url + "/echo", json={"temperature": "hot", "prompts": ["a"]}, timeout=10)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "temperature"]
