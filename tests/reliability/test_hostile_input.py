"""Hostile requests from a caller who holds the API token, against real services on tiny models:

1. per-run service URLs: only the operator's (configured or ORCHESTRATOR_ALLOWED_SERVICE_URLS); the
   service token goes only there, and a run's error never quotes what a service answered;
2. values no field can mean (NaN, Infinity, 1e400, lone surrogates) in any body of any service: a 422
   naming the field, never a 500;
3. runs too large for the services, data files that inflate or never end, an adapter policy that
   cannot be trained as configured: a 422 at submission;
4. the orchestrator's /health answers at once behind a pile of plot renders;
5. open routes show model ids, not server paths, to a caller without the token.

Every request goes to 127.0.0.1 listeners this test started.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from raftflow.processes import ServiceProcess
from tests.processes import start_service
from tests.reliability.conftest import RecordFn

TOKEN = "hostile-input-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "REMOTE-BODY-SECRET-4711"
JSON = {"content-type": "application/json", **AUTH}


@dataclass
class Capture:
    """A plain HTTP listener that records each request's path and Authorization header and answers
    422 with a body no run error may repeat."""

    url: str
    seen: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def capture() -> Iterator[Capture]:
    yield from listener(422, {"detail": SECRET, "error": SECRET})


@pytest.fixture
def not_found() -> Iterator[Capture]:
    """What any other web app answers to TGI's and OpenAI's routes: FastAPI's 404."""
    yield from listener(404, {"detail": "Not Found"})


def listener(status: int, answer: dict[str, str]) -> Iterator[Capture]:
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Capture(f"http://127.0.0.1:{server.server_address[1]}", seen)
    server.shutdown()


@dataclass
class Stack:
    generator_url: str
    rewarder_url: str
    orchestrator_url: str
    orchestrator: ServiceProcess
    data: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A generator, a rewarder and an orchestrator (path roots: the data folder and the tiny models),
    all with TOKEN; no trainer: runs here use trainer 'external' or never get that far."""
    logs = tmp_path_factory.mktemp("hostile")
    data = logs / "data"
    data.mkdir()
    started: list[ServiceProcess] = []
    env = {"RAFTFLOW_API_TOKEN": TOKEN, "RAFTFLOW_TORCH_THREADS": "1"}
    try:
        for module, model in (("services.generator", "policy"), ("services.rewarder", "reward")):
            process, _ = start_service(
                module, "--model", str(tiny_models[model]), log_dir=logs, env=env, wait=False
            )
            started.append(process)
        for process in started:
            process.wait_healthy(90)
        generator_url, rewarder_url = (p.health_url.removesuffix("/health") for p in started)
        orchestrator_env = {
            **env,
            "GENERATOR_URL": generator_url,
            "REWARDER_URL": rewarder_url,
            "ARTIFACTS_DIR": str(logs / "artifacts"),
            "DATABASE_URL": f"sqlite:///{logs / 'orchestrator.db'}",
            "ORCHESTRATOR_PATH_ROOTS": json.dumps([str(data), str(tiny_models["policy"].parent)]),
            "RAFTFLOW_MAX_DATA_BYTES": str(1024 * 1024),
        }
        orchestrator, orchestrator_url = start_service(
            "orchestrator", log_dir=logs, env=orchestrator_env, timeout=60
        )
        started.append(orchestrator)
        yield Stack(generator_url, rewarder_url, orchestrator_url, orchestrator, data, orchestrator_env)
    finally:
        for process in reversed(started):
            process.stop()


def write_prompts(path: Path, prompts: list[str] | None = None) -> Path:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts or ["a cat", "a dog"]))
    return path


def run_body(stack: Stack, policy: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "policy": policy,
        "prompts": str(write_prompts(stack.data / "prompts.jsonl")),
        "num_iterations": 1,
        "prompts_per_iteration": 2,
        "k": 2,
        "max_new_tokens": 4,
        "seed": 0,
    }
    return {**body, **overrides}


def post_run(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/iterations", json=body, headers=AUTH, timeout=30)


def error_loc(response: httpx.Response) -> list:
    assert response.status_code == 422, response.text
    return response.json()["detail"][0]["loc"]


def wait_for(url: str, run_id: str, done: Callable[[dict], bool], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    view: dict = {}
    while time.monotonic() < deadline:
        view = httpx.get(f"{url}/iterations/{run_id}", headers=AUTH, timeout=10).json()
        if done(view):
            return view
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id}: {view.get('status')} / {view.get('stage')} after {timeout}s")


# -- 1. per-run service URLs -------------------------------------------------------------------------


def test_a_run_may_name_only_the_operators_service_urls(
    stack: Stack, capture: Capture, tiny_models: dict[str, Path], reliability_log: RecordFn
) -> None:
    policy = str(tiny_models["policy"])
    refused: list[tuple[list, dict[str, Any]]] = [
        (["generator_url"], {"generator_url": capture.url}),
        (["generator_urls", 1], {"generator_urls": [stack.generator_url, capture.url]}),
        (["rewarder_url"], {"rewarder_url": capture.url + "/"}),
        (["rewarder_urls", 0], {"rewarder_urls": [capture.url]}),
        (["gold_rewarder_url"], {"gold_rewarder_url": capture.url}),
        # a TGI server named per run is the same field
        (
            ["generator_url"],
            {"generator_url": capture.url, "generator_backend": "tgi", "prompt_format": "hh"},
        ),  # noqa: E501
    ]
    for loc, fields in refused:
        response = post_run(stack.orchestrator_url, run_body(stack, policy, **fields))
        assert error_loc(response) == ["body", *loc]
        assert "ORCHESTRATOR_ALLOWED_SERVICE_URLS" in response.json()["detail"][0]["msg"]
    time.sleep(0.5)
    assert capture.seen == [], "a refused URL was contacted"
    # The configured URLs themselves stay usable per run, in any spelling of the same address.
    spelled = stack.generator_url.upper().replace("HTTP://", "http://") + "/"
    accepted = post_run(
        stack.orchestrator_url, run_body(stack, policy, generator_url=spelled, trainer="external")
    )
    assert accepted.status_code == 202, accepted.text
    httpx.post(f"{accepted.headers['Location']}/cancel", headers=AUTH, timeout=10)
    reliability_log(
        "security",
        "per-run service URLs outside the operator's list",
        "POST /iterations naming a listener of the test's own in each of generator_url, generator_urls, "
        "rewarder_url, rewarder_urls, gold_rewarder_url and as a TGI generator",
        f"{len(refused)} bodies refused with 422 naming the field; the listener got {len(capture.seen)} "
        "requests; the configured generator URL stayed accepted per run",
        requests=len(refused) + 1,
    )


def test_the_service_token_goes_only_to_allowed_urls_and_errors_never_quote_them(
    stack: Stack,
    capture: Capture,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    reliability_log: RecordFn,
) -> None:
    """An orchestrator with its own API token and ORCHESTRATOR_SERVICE_TOKEN for the services; the
    operator allowed the capture listener as a rewarder. It receives the service token (never the API
    token), answers 422 with a secret body, and the failed run's error names the rewarder, the status
    and what to check, without the secret."""
    env = {
        **stack.env,
        "RAFTFLOW_API_TOKEN": "orchestrator-api-token",
        "ORCHESTRATOR_SERVICE_TOKEN": TOKEN,
        "ORCHESTRATOR_ALLOWED_SERVICE_URLS": json.dumps([capture.url]),
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
    }
    orchestrator, url = start_service("orchestrator", log_dir=tmp_path, env=env, timeout=60)
    try:
        headers = {"Authorization": "Bearer orchestrator-api-token"}
        body = run_body(stack, str(tiny_models["policy"]), rewarder_url=capture.url)
        created = httpx.post(url + "/iterations", json=body, headers=headers, timeout=30)
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 120
        view: dict = {}
        while time.monotonic() < deadline:
            view = httpx.get(created.headers["Location"], headers=headers, timeout=10).json()
            if view["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        log = orchestrator.log_path.read_text()
    finally:
        orchestrator.stop()
    assert view["status"] == "failed", view
    error = view["error"]
    assert SECRET not in error and "rewarder" in error and "422" in error, error
    assert capture.url in error  # which service to look at
    assert capture.seen and {auth for _, auth in capture.seen} == {f"Bearer {TOKEN}"}, capture.seen
    assert SECRET in log  # the operator still finds the service's reason, in the orchestrator's log
    reliability_log(
        "security",
        "the orchestrator's outbound token and a remote error body",
        "an orchestrator with API token A and ORCHESTRATOR_SERVICE_TOKEN B runs against an allowed "
        "rewarder that answers 422 with a secret body",
        f"the rewarder got {len(capture.seen)} request(s), all with token B; the run failed with "
        f"'{error[:140]}' (no remote text); the body is in the orchestrator's log",
        requests=len(capture.seen) + 2,
    )


def test_a_server_of_another_kind_fails_the_run_with_a_sentence(
    stack: Stack, not_found: Capture, tiny_models: dict[str, Path], tmp_path: Path, reliability_log: RecordFn
) -> None:
    """An allowed URL that answers like any other web app (404, FastAPI's body): as a TGI server the
    TGI client raised KeyError('error'), which was the run's whole error."""
    env = {
        **stack.env,
        "ORCHESTRATOR_ALLOWED_SERVICE_URLS": json.dumps([not_found.url]),
        "ORCHESTRATOR_RETRY_SECONDS": "5",
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
    }
    orchestrator, url = start_service("orchestrator", log_dir=tmp_path, env=env, timeout=60)
    errors = {}
    try:
        for backend in ("tgi", "openai"):
            body = run_body(
                stack,
                str(tiny_models["policy"]),
                generator_url=not_found.url,
                generator_backend=backend,
                prompt_format="hh",
            )
            created = post_run(url, body)
            assert created.status_code == 202, created.text
            view = wait_for(url, created.json()["id"], lambda v: v["status"] not in ("queued", "running"))
            assert view["status"] == "failed", view
            errors[backend] = view["error"]
    finally:
        orchestrator.stop()
    assert "answered in a shape that TGI's API never uses" in errors["tgi"], errors["tgi"]
    assert "KeyError:" not in errors["tgi"]
    assert errors["openai"].startswith(
        f"the generator at {not_found.url}/v1/models refused a request with HTTP 404"
    )
    reliability_log(
        "bad-input",
        "an allowed service URL that is another kind of server",
        "runs naming a listener that answers every route with FastAPI's 404 as a TGI server and as an "
        "OpenAI-compatible generator",
        f"both runs failed with a sentence: '{errors['tgi'][:100]}...'; '{errors['openai'][:100]}...'",
        requests=2,
    )


# -- 2. NaN, Infinity, 1e400, lone surrogates --------------------------------------------------------

BAD_BODIES: list[tuple[str, str, str, str, list]] = [
    # (service, method path, raw body, why, expected loc)
    ("generator", "/v1/completions", '{"prompt": "hi", "max_tokens": 2, "temperature": NaN}', "NaN",
     ["body", "temperature"]),
    ("generator", "/v1/completions", '{"prompt": "hi", "max_tokens": 2, "top_p": 1e400}', "1e400",
     ["body", "top_p"]),
    ("generator", "/v1/completions", '{"prompt": ["ok", "\\ud800"], "max_tokens": 2}', "lone surrogate",
     ["body", "prompt", 1]),
    ("generator", "/v1/chat/completions",
     '{"messages": [{"role": "user", "content": "\\udc00"}], "max_tokens": 2}', "lone surrogate",
     ["body", "messages", 0, "content"]),
    ("generator", "/v1/load", '{"path": "\\ud800"}', "lone surrogate", ["body", "path"]),
    ("generator", "/generate", '{"inputs": "hi", "parameters": {"temperature": Infinity}}', "Infinity",
     ["body", "parameters", "temperature"]),
    ("generator", "/v1/logprobs", '{"prompts": ["a"], "responses": ["\\ud800"]}', "lone surrogate",
     ["body", "responses", 0]),
    ("rewarder", "/score", '{"texts": ["\\ud800"]}', "lone surrogate", ["body", "texts", 0]),
    ("rewarder", "/score", '{"texts": ["a"], "normalize": NaN}', "NaN", ["body", "normalize"]),
    ("rewarder", "/get_reward", '{"query": ["\\udfff"]}', "lone surrogate", ["body", "query", 0]),
    ("orchestrator", "/iterations", '{"policy": "p", "prompts": "x", "temperature": NaN}', "NaN",
     ["body", "temperature"]),
    ("orchestrator", "/iterations", '{"policy": "\\ud800", "prompts": "x"}', "lone surrogate",
     ["body", "policy"]),
    ("orchestrator", "/iterations", '{"policy": "p", "prompts": "x", "seed": 1e400}', "1e400",
     ["body", "seed"]),
    ("orchestrator", "/iterations", '{"policy": "p", "prompts": "x", "training": {"epochs": -Infinity}}',
     "-Infinity", ["body", "training", "epochs"]),
    ("orchestrator", "/iterations", '{"policy": "p", "prompts": "x", "min_reward": NaN}', "NaN",
     ["body", "min_reward"]),
]  # fmt: skip


def test_values_no_field_can_mean_get_a_422_naming_the_field(stack: Stack, reliability_log: RecordFn) -> None:
    urls = {
        "generator": stack.generator_url,
        "rewarder": stack.rewarder_url,
        "orchestrator": stack.orchestrator_url,
    }
    for service, path, raw, why, loc in BAD_BODIES:
        response = httpx.post(urls[service] + path, content=raw.encode(), headers=JSON, timeout=30)
        assert response.status_code == 422, (service, path, why, response.status_code, response.text)
        assert response.json()["detail"][0]["loc"] == loc, (service, path, response.text)
    # TGI's client reads "error" from any non-200 answer: it is there too.
    tgi = httpx.post(
        stack.generator_url + "/generate", content=BAD_BODIES[5][2].encode(), headers=JSON, timeout=30
    )
    assert tgi.json()["error"].startswith("parameters.temperature")
    # A valid surrogate pair (an emoji) is one character and is served.
    ok = httpx.post(
        stack.generator_url + "/v1/completions",
        content=b'{"prompt": "\\ud83d\\ude00", "max_tokens": 2}',
        headers=JSON,
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    reliability_log(
        "bad-input",
        "NaN, Infinity, 1e400 and lone surrogates in request bodies",
        f"{len(BAD_BODIES)} raw JSON bodies to the generator (completions, chat, load, TGI generate, "
        "logprobs), the rewarder (score, get_reward) and the orchestrator (runs)",
        "every one answered 422 naming the field (no 500); an emoji written as a surrogate pair was served",
        requests=len(BAD_BODIES) + 2,
    )


# -- 3. run size, data files, adapter policies -------------------------------------------------------


def test_runs_and_data_the_stack_cannot_serve_are_refused_at_submission(
    stack: Stack, tiny_models: dict[str, Path], reliability_log: RecordFn
) -> None:
    policy = str(tiny_models["policy"])
    url = stack.orchestrator_url
    assert error_loc(post_run(url, run_body(stack, policy, k=65))) == ["body", "k"]
    assert error_loc(post_run(url, run_body(stack, policy, max_new_tokens=2048))) == [
        "body",
        "max_new_tokens",
    ]
    huge = run_body(stack, policy, prompts_per_iteration=100_000, k=64)
    assert error_loc(post_run(url, huge)) == ["body", "prompts_per_iteration"]

    # A 1.6 MB prompts file behind a small gzip: over the orchestrator's 1 MiB RAFTFLOW_MAX_DATA_BYTES.
    bomb = stack.data / "bomb.jsonl.gz"
    line = (json.dumps({"prompt": "x" * 1000}) + "\n").encode()
    bomb.write_bytes(gzip.compress(line * 1600))
    refused = post_run(url, run_body(stack, policy, prompts=str(bomb)))
    assert error_loc(refused) == ["body", "prompts"]
    assert "RAFTFLOW_MAX_DATA_BYTES" in refused.json()["detail"][0]["msg"]

    fifo = stack.data / "pipe.jsonl"
    os.mkfifo(fifo)
    started = time.monotonic()
    refused = post_run(url, run_body(stack, policy, prompts=str(fifo)))
    assert error_loc(refused) == ["body", "prompts"] and time.monotonic() - started < 10
    assert "not a regular file" in refused.json()["detail"][0]["msg"]

    escaped = stack.data / "surrogate.jsonl"
    escaped.write_text('{"prompt": "fine"}\n{"prompt": "bad \\ud800 text"}\n')
    refused = post_run(url, run_body(stack, policy, prompts=str(escaped)))
    assert error_loc(refused) == ["body", "prompts"]
    assert "record 1" in refused.json()["detail"][0]["msg"]
    assert "lone surrogate" in refused.json()["detail"][0]["msg"]

    adapter = stack.data / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": policy}))
    refused = post_run(url, run_body(stack, str(adapter)))
    assert error_loc(refused) == ["body", "training", "lora"]
    reliability_log(
        "bad-input",
        "runs too large, inflating or endless data, an adapter policy without LoRA training",
        "POST /iterations with k 65, max_new_tokens 2048, 100,000 prompts x 64, a gzip prompts file "
        "inflating past the data limit, a FIFO named .jsonl, an escaped lone surrogate in a prompt, and "
        "an unmerged LoRA policy without training.lora",
        "each answered 422 naming the field (the FIFO within 10 s, the surrogate with its record)",
        requests=7,
    )


# -- 4. health behind plot renders -------------------------------------------------------------------


def test_health_answers_at_once_behind_many_plot_renders(
    stack: Stack, tiny_models: dict[str, Path], reliability_log: RecordFn
) -> None:
    created = post_run(
        stack.orchestrator_url, run_body(stack, str(tiny_models["policy"]), trainer="external")
    )
    assert created.status_code == 202, created.text
    plot = f"{created.headers['Location']}/metrics.png"
    with ThreadPoolExecutor(max_workers=60) as pool:
        renders = [pool.submit(httpx.get, plot, headers=AUTH, timeout=120) for _ in range(60)]
        time.sleep(1.0)  # the renders hold the route thread pool (40 threads) now, 20 more queued
        done_before = sum(future.done() for future in renders)
        started = time.monotonic()
        health = httpx.get(stack.orchestrator_url + "/health", timeout=60)
        waited = time.monotonic() - started
        done_while_waiting = sum(future.done() for future in renders) - done_before
        statuses = {future.result().status_code for future in renders}
    httpx.post(f"{created.headers['Location']}/cancel", headers=AUTH, timeout=10)
    assert health.status_code == 200 and statuses == {200}
    # On the shared pool the probe queued behind the waiting renders: 9 of them finished while it waited
    # (3.3 s) here. Off it, it answers at once (0.05 s, none finished meanwhile).
    assert done_while_waiting <= 3, f"{done_while_waiting} renders finished while /health waited"
    assert waited < 5.0, f"/health took {waited:.2f} s behind 60 plot renders"
    reliability_log(
        "fault",
        "60 concurrent metrics.png renders and a health probe",
        "60 threads GET a run's metrics.png, then GET /health",
        f"/health answered 200 in {waited:.2f} s, {done_while_waiting} renders finishing meanwhile; all "
        "60 renders answered 200",
        requests=61,
    )


# -- 5. open routes --------------------------------------------------------------------------------


def test_open_routes_show_ids_not_paths_without_the_token(
    stack: Stack, tiny_models: dict[str, Path], reliability_log: RecordFn
) -> None:
    paths = {str(tiny_models["policy"]), str(tiny_models["reward"]), str(tiny_models["policy"].parent)}
    open_routes = [
        stack.generator_url + "/health",
        stack.generator_url + "/v1/models",
        stack.generator_url + "/info",
        stack.rewarder_url + "/info",
    ]
    for url in open_routes:
        text = httpx.get(url, timeout=10).text
        assert not any(path in text for path in paths), (url, text)
    anonymous = httpx.get(stack.generator_url + "/v1/models", timeout=10).json()
    assert anonymous["checkpoint"] == f"{tiny_models['policy'].name}@{anonymous['version']}"
    full = httpx.get(stack.generator_url + "/v1/models", headers=AUTH, timeout=10).json()
    assert full["checkpoint"] in (str(tiny_models["policy"]), str(tiny_models["policy"].resolve()))
    reliability_log(
        "security",
        "server paths on the open routes",
        "GET /health, /v1/models and /info on the generator and /info on the rewarder without a token",
        "none shows a checkpoint path (name@version instead); with the token /v1/models gives the path",
        requests=len(open_routes) + 2,
    )


pytestmark = pytest.mark.slow
