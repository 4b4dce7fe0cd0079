"""Shared server plumbing: body size limit, bearer auth, run-time 422s, on a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from raftflow.server import (
    add_request_limits,
    bearer_auth,
    free_port,
    limit_error,
    uvicorn_options,
)
from raftflow.server.limits import BodySizeLimit
from raftflow.settings import CommonSettings


class Echo(BaseModel):
    text: str


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodySizeLimit, max_bytes=2048)
    auth = bearer_auth("s3cret", reads_open=True)

    @app.post("/echo", dependencies=[Depends(auth)])
    def echo(body: Echo) -> dict:
        if len(body.text) > 100:
            raise limit_error("text", "text over 100 characters", value=len(body.text), limit=100)
        return {"text": body.text}

    @app.get("/open", dependencies=[Depends(auth)])
    def open_read() -> dict:
        return {"ok": True}

    return app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_bearer_auth_guards_mutations_only(base_url: str) -> None:
    assert httpx.post(f"{base_url}/echo", json={"text": "hi"}).status_code == 401
    bad = httpx.post(f"{base_url}/echo", json={"text": "hi"}, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    good = httpx.post(f"{base_url}/echo", json={"text": "hi"}, headers={"Authorization": "Bearer s3cret"})
    assert good.json() == {"text": "hi"}
    assert httpx.get(f"{base_url}/open").status_code == 200


def test_body_limit_rejects_declared_and_streamed_bodies(base_url: str) -> None:
    headers = {"Authorization": "Bearer s3cret"}
    big = httpx.post(f"{base_url}/echo", json={"text": "x" * 5000}, headers=headers)
    assert big.status_code == 413 and "2048-byte limit" in big.text

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            yield b"y" * 512
        yield b'"}'

    streamed = httpx.post(f"{base_url}/echo", content=chunks(), headers=headers)
    assert streamed.status_code == 413


def test_run_time_limit_is_a_422_naming_field_and_limit(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/echo", json={"text": "z" * 150}, headers={"Authorization": "Bearer s3cret"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "text"] and detail["ctx"] == {"limit": 100}


def test_request_limits_and_uvicorn_options_cut_off_slow_clients() -> None:
    """The shared limits in-process (tests/reliability/test_slow_clients.py runs them in a service):
    a stalled body gets 408 and a closed connection, a silent connection is closed, a big head is 431."""
    settings = CommonSettings(body_read_timeout=0.5, header_read_timeout=0.5, max_header_bytes=2048)
    app = FastAPI()
    add_request_limits(app, settings)

    @app.post("/echo")
    def echo(body: Echo) -> dict:
        return {"text": body.text}

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
        silent = socket.create_connection(("127.0.0.1", port))
        for sock in (stalled, silent):
            sock.settimeout(3)
        started = time.monotonic()
        answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower()
        assert stalled.recv(4096) == b"" and silent.recv(4096) == b""  # both closed by the server
        assert time.monotonic() - started < 2.0
        big = httpx.post(f"http://127.0.0.1:{port}/echo", json={"text": "x"}, headers={"X-Big": "a" * 3000})
        assert big.status_code == 431
        assert httpx.post(f"http://127.0.0.1:{port}/echo", json={"text": "ok"}).json() == {"text": "ok"}
    finally:
        server.should_exit = True
        thread.join(5)


def test_every_service_app_has_the_same_skeleton(monkeypatch) -> None:
    """Generator, rewarder and orchestrator are built by one factory: the same version, /metrics with
    the same request series, and a refusal by the size limit counted under its route template."""
    from fastapi.testclient import TestClient

    import raftflow
    from orchestrator.main import create_app as orchestrator_app
    from orchestrator.settings import OrchestratorSettings
    from services.generator.app import create_app as generator_app
    from services.generator.settings import GeneratorSettings
    from services.rewarder.app import create_app as rewarder_app
    from services.rewarder.settings import RewarderSettings

    monkeypatch.setenv("RAFTFLOW_ALLOW_NO_AUTH", "1")
    limit = {"max_body_bytes": 2048}
    apps = {
        "generator": (generator_app(GeneratorSettings(model="unused", **limit)), "/v1/completions"),
        "rewarder": (rewarder_app(RewarderSettings(function="pkg.mod:fn", **limit)), "/score"),
        "orchestrator": (orchestrator_app(OrchestratorSettings(**limit)), "/iterations/{run_id}/checkpoint"),
    }
    for service, (app, route) in apps.items():
        assert app.version == raftflow.__version__ and app.title == f"raftflow {service}"
        # No lifespan (no model is loaded): the limit refuses the body before any route runs.
        client = TestClient(app)
        path = route.replace("{run_id}", "abc")
        response = client.post(path, content=b"x" * 4096, headers={"content-type": "application/json"})
        assert response.status_code == 413
        metrics = client.get("/metrics").text
        assert f'{service}_http_requests_total{{route="{route}",status="413"}} 1.0' in metrics, service
        assert f'{service}_http_request_seconds_count{{route="{route}"}} 1.0' in metrics, service
