"""Bad input: schemathesis fuzzes the OpenAPI schema of every HTTP service, and the trainer's queue
gets malformed job dicts.

Each service runs as a real process (uvicorn on loopback, tiny models, bearer token on). For every
operation of its ``/openapi.json``, hypothesis draws schema-valid (positive) and schema-violating
(negative) requests; each answer must pass schemathesis's checks: no 5xx, a status the operation
documents, the documented content type, a body matching the response schema, headers as documented,
and schema-violating requests rejected. A second pass without the token must see no 5xx either, and no
protected operation may answer 2xx to it. A status a route really returns but does not document is
fixed in the route (``responses=``), not excused here.

Bounded on purpose: a fixed hypothesis seed (``RAFTFLOW_FUZZ_SEED`` picks another, for exploring) and
a few dozen examples per operation and mode (``RAFTFLOW_FUZZ_SCALE`` multiplies them), so the file
runs in about a minute on 2 busy cores. The generator runs with small limits (4 prompts, n 4, 16
tokens): its defaults (256 prompts x n 64 x 1024 tokens) let one valid request hold its single
generation thread for minutes on a CPU (8 prompts x 64 x 250 tokens took 18 s on the tiny model),
which is what those limits are for sizing; there is no per-request deadline.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from raftflow.celery_config import TASK_REWARD_MODEL, TASK_SFT, make_celery_app
from raftflow.clients.trainer import JobFailed, TrainerClient
from raftflow.data import PromptResponse, write_text2text
from raftflow.schemas.jobs import SFTJob, TrainingConfig
from raftflow.server import free_port
from tests.processes import start_process

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FUZZ_SEED = int(os.environ.get("RAFTFLOW_FUZZ_SEED", "8"))
SCALE = float(os.environ.get("RAFTFLOW_FUZZ_SCALE", "1"))
REQUEST_TIMEOUT = 60.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)

# prepare(case, data): adjust a drawn case before it is sent (e.g. point a path field at a real file,
# so valid bodies get past the existence checks and reach the code behind them).
Prepare = Callable[[Any, st.DataObject], None]


def examples(count: int) -> int:
    return max(1, round(count * SCALE))


@pytest.fixture(autouse=True, scope="module")
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis keeps caches in ./.hypothesis even without an example database: not in the repo."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@dataclass
class Campaign:
    """Everything sent to one service and what came back."""

    service: str
    base_url: str
    requests: int = 0
    server_errors: int = 0
    statuses: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    on_response: Callable[[Any, Any], None] | None = None
    """Called with (case, response) for every answer, e.g. to collect the ids a POST created."""
    hostile: int = 0
    """Bodies sent with one value replaced by one no field can mean (NaN, Infinity, 1e400, a lone
    surrogate): each must be a 422 whose loc names that value."""
    _hostile_per_operation: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self.schema = schemathesis.openapi.from_url(f"{self.base_url}/openapi.json", timeout=30)
        self.session = requests.Session()

    def operations(self) -> list[Any]:
        return [result.ok() for result in self.schema.get_all_operations()]

    def protected(self, operation: Any) -> bool:
        """Whether the schema says the operation needs the bearer token."""
        raw = self.schema.raw_schema["paths"][operation.path][operation.method.lower()]
        requirements = raw.get("security") or []
        return bool(requirements) and {} not in requirements

    def fuzz(
        self,
        max_examples: int,
        headers: dict[str, str],
        prepare: dict[str, Prepare] | None = None,
    ) -> None:
        """Every operation, positive then negative, ``max_examples`` requests each (fewer when the
        operation has nothing to vary, e.g. a GET without parameters)."""
        started = time.monotonic()
        for operation in self.operations():
            for mode in MODES:
                self._fuzz_operation(
                    operation, mode, max_examples, headers, (prepare or {}).get(operation.label)
                )
        self.seconds += time.monotonic() - started

    def _fuzz_operation(
        self,
        operation: Any,
        mode: GenerationMode,
        max_examples: int,
        headers: dict[str, str],
        prepare: Prepare | None,
    ) -> None:
        @hypothesis.seed(FUZZ_SEED)
        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,  # nothing to replay: the seed is fixed
            phases=[Phase.generate],  # failures are collected, not raised: nothing to shrink
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def send(case: Any, data: st.DataObject) -> None:
            if prepare is not None and mode is GenerationMode.POSITIVE:
                prepare(case, data)
            self.check(case, headers)
            if mode is GenerationMode.POSITIVE and headers:
                self.send_hostile_values(case, headers)

        try:
            send()
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to negate (no input)

    def check(self, case: Any, headers: dict[str, str]) -> None:
        """Send one case, count it and run the checks; a failure is recorded, not raised, so one run
        reports every finding."""
        self.requests += 1
        if own_auth_under_test(case):
            headers = {}
        try:
            response = case.call(
                base_url=self.base_url, headers=headers, session=self.session, timeout=REQUEST_TIMEOUT
            )
        except requests.RequestException as exc:
            self.failures.append(f"{case.operation.label}: no answer: {exc!r}\n{case.as_curl_command()}")
            return
        self.statuses[(case.operation.label, response.status_code)] += 1
        if response.status_code >= 500:
            self.server_errors += 1
        if self.on_response is not None:
            self.on_response(case, response)
        try:
            case.validate_response(
                response, checks=CHECKS, headers=headers, transport_kwargs={"base_url": self.base_url}
            )
        except FailureGroup as exc:
            self.failures.append(str(exc)[:3000])

    def send_hostile_values(self, case: Any, headers: dict[str, str]) -> None:
        """The first few valid bodies of each operation again, once per value (up to 12 values each),
        with that value replaced by a non-finite number (for a number) or a lone surrogate (for a
        string), sent as raw JSON: Python's json module reads all of them, schemathesis never draws
        them."""
        label = case.operation.label
        if not isinstance(case.body, (dict, list)) or self._hostile_per_operation[label] >= HOSTILE_BODIES:
            return
        self._hostile_per_operation[label] += 1
        for n, (path, value) in enumerate(json_leaves(case.body)[:12]):
            if isinstance(value, str):
                bad = '"text \\ud800"'
            else:
                bad = ("NaN", "Infinity", "-Infinity", "1e400")[n % 4]
            raw = json.dumps(replace_at(case.body, path, HOSTILE_SENTINEL)).replace(
                json.dumps(HOSTILE_SENTINEL), bad
            )
            self.requests += 1
            self.hostile += 1
            try:
                response = self.session.request(
                    case.method,
                    self.base_url + case.formatted_path,
                    data=raw.encode(),
                    headers={**headers, "content-type": "application/json"},
                    timeout=REQUEST_TIMEOUT,
                )
            except requests.RequestException as exc:
                self.failures.append(f"{label}: no answer to a hostile value at {path}: {exc!r}")
                continue
            self.statuses[(label, response.status_code)] += 1
            if response.status_code >= 500:
                self.server_errors += 1
            loc = response.json().get("detail", [{}])[0].get("loc") if response.status_code == 422 else None
            if loc != ["body", *path]:
                self.failures.append(
                    f"{label}: {bad} at {path}: {response.status_code}, loc {loc}: {response.text[:300]}"
                )

    def assert_clean(self) -> None:
        assert self.server_errors == 0 and not self.failures, (
            f"{self.service}: {self.server_errors} 5xx, {len(self.failures)} failed checks in "
            f"{self.requests} requests:\n\n" + "\n\n".join(self.failures[:8])
        )

    def unauthenticated_2xx(self) -> list[str]:
        """Protected operations that answered 2xx (statuses counted since the last reset)."""
        protected = {op.label for op in self.operations() if self.protected(op)}
        return [
            f"{label}: {status}" for (label, status) in self.statuses if label in protected and status < 300
        ]

    def summary(self) -> str:
        by_status: collections.Counter[int] = collections.Counter()
        for (_, status), count in self.statuses.items():
            by_status[status] += count
        statuses = ", ".join(f"{count}x{status}" for status, count in sorted(by_status.items()))
        return (
            f"{self.requests} requests over {len(self.operations())} operations ({statuses}) in "
            f"{self.seconds:.0f} s, {self.hostile} of them with a NaN, Infinity, 1e400 or lone surrogate in "
            f"place of one value: {self.server_errors} 5xx, {len(self.failures)} failed checks"
        )


HOSTILE_BODIES = 3  # valid bodies per operation turned into hostile ones
HOSTILE_SENTINEL = "\x00hostile-value\x00"


def json_leaves(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[list[str | int], Any]]:
    """(path, value) of every number and string in a decoded JSON body (booleans are not numbers
    here: a NaN there is a type error, which schemathesis already covers)."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in json_leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in json_leaves(item, (*path, i))]
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return [(list(path), value)]
    return []


def replace_at(value: Any, path: list[str | int], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replace_at(value[path[0]], path[1:], new)
    return copy


def own_auth_under_test(case: Any) -> bool:
    """Whether a negative case's broken or missing Authorization header is the thing under test.

    The schema declares the bearer token, so negative cases often mutate that header. Adding the real
    token back to a case whose only other mutation is one the server may ignore (an unknown query
    parameter) would make it valid, and the check would then blame the server for accepting it; such
    cases go out as generated (and get 401). A case that also mutates the body still gets the token,
    so its body reaches validation instead of stopping at the auth check.
    """
    meta = case.meta
    if meta is None or not meta.is_negative_at(ParameterLocation.HEADER):
        return False
    return not meta.is_negative_at(ParameterLocation.BODY)


def run_campaign(
    campaign: Campaign, authenticated: int, anonymous: int, prepare: dict[str, Prepare] | None = None
) -> Campaign:
    """The token pass, then the anonymous one: no 5xx and no violations in either, and without the
    token no protected operation answers 2xx."""
    campaign.fuzz(examples(authenticated), AUTH, prepare)
    with_token = collections.Counter(campaign.statuses)
    campaign.statuses.clear()
    campaign.fuzz(examples(anonymous), {})
    leaked = campaign.unauthenticated_2xx()
    anonymous_statuses = campaign.statuses
    campaign.statuses = with_token + anonymous_statuses
    campaign.assert_clean()
    assert not leaked, f"{campaign.service}: protected operations answered without the token: {leaked}"
    return campaign


def test_generator_api_survives_fuzzing(
    tiny_models: dict[str, Path], start_service, reliability_log, tmp_path: Path
) -> None:
    """The OpenAI, TGI, logprobs and load routes. /v1/load is confined to a checkpoints directory that
    holds a copy of the policy; some valid load bodies name it, so hot reloads (and reference loads
    for /v1/logprobs) happen under fuzzing too."""
    roots = tmp_path / "checkpoints"
    checkpoint = shutil.copytree(tiny_models["policy"], roots / "policy-copy")
    _, url = start_service(
        "services.generator",
        "--model",
        str(tiny_models["policy"]),
        *("--max-n", "4", "--max-tokens", "16", "--max-prompts", "4"),
        env={"RAFTFLOW_API_TOKEN": TOKEN, "GENERATOR_LOAD_ROOTS": json.dumps([str(roots)])},
    )

    def real_checkpoint(case: Any, data: st.DataObject) -> None:
        if isinstance(case.body, dict) and data.draw(st.integers(0, 7), label="use real checkpoint") == 0:
            field_name = data.draw(st.sampled_from(["path", "reference"]), label="field")
            case.body[field_name] = str(checkpoint)

    campaign = run_campaign(
        Campaign("generator", url), authenticated=45, anonymous=8, prepare={"POST /v1/load": real_checkpoint}
    )
    assert campaign.statuses[("POST /v1/completions", 200)] > 0
    assert campaign.statuses[("POST /generate", 200)] > 0
    assert campaign.statuses[("POST /v1/load", 200)] > 0
    reliability_log(
        "bad-input",
        "schemathesis fuzzing of the generator API",
        "schemathesis 4 positive and negative cases for all 8 operations of /openapi.json against a "
        "real generator on the tiny policy (token on, small limits, load roots), then without the "
        "token; checks: no 5xx, documented status, content type, response schema and headers, "
        "invalid input rejected",
        campaign.summary(),
        requests=campaign.requests,
        server_errors=campaign.server_errors,
    )


def test_rewarder_api_survives_fuzzing(tiny_models: dict[str, Path], start_service, reliability_log) -> None:
    """/score and /get_reward with the tiny reward model, plus the open /info and /health."""
    _, url = start_service(
        "services.rewarder", "--model", str(tiny_models["reward"]), env={"RAFTFLOW_API_TOKEN": TOKEN}
    )
    campaign = run_campaign(Campaign("rewarder", url), authenticated=100, anonymous=8)
    assert campaign.statuses[("POST /score", 200)] > 0
    assert campaign.statuses[("POST /get_reward", 200)] > 0
    reliability_log(
        "bad-input",
        "schemathesis fuzzing of the rewarder API",
        "schemathesis 4 positive and negative cases for all 4 operations of /openapi.json against a "
        "real rewarder on the tiny reward model (token on), then without the token; same checks as "
        "the generator's",
        campaign.summary(),
        requests=campaign.requests,
        server_errors=campaign.server_errors,
    )


def test_orchestrator_api_survives_fuzzing(
    tiny_models: dict[str, Path], start_service, reliability_log, redis_url: str, tmp_path: Path
) -> None:
    """POST /iterations and the run routes. About half the valid run bodies get a real policy and
    prompt file (inside ORCHESTRATOR_PATH_ROOTS), so runs are really created and started, with every
    other field as fuzzed; the run routes then get those run ids as often as made-up ones. The
    generator and rewarder URLs are closed ports, so each run fails at its first call after
    ORCHESTRATOR_RETRY_SECONDS; runs still queued at the end are cancelled through the API."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    prompts = data_dir / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"tell me about {w}"}) + "\n" for w in "abcdefgh"))
    policy = shutil.copytree(tiny_models["policy"], data_dir / "policy")
    unreachable = f"http://127.0.0.1:{free_port()}"
    _, url = start_service(
        "orchestrator",
        env={
            "RAFTFLOW_API_TOKEN": TOKEN,
            "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
            "ORCHESTRATOR_PATH_ROOTS": json.dumps([str(data_dir)]),
            "GENERATOR_URL": unreachable,
            "REWARDER_URL": unreachable,
            "REDIS_URL": redis_url,
            "ORCHESTRATOR_RETRY_SECONDS": "1",
        },
    )
    run_ids: list[str] = []

    def real_run(case: Any, data: st.DataObject) -> None:
        if not isinstance(case.body, dict) or not data.draw(st.booleans(), label="real paths"):
            return
        case.body.update(policy=str(policy), prompts=str(prompts))
        if case.body.get("eval_prompts") is not None:
            case.body["eval_prompts"] = str(prompts)
        for key in ("generator_url", "rewarder_url", "gold_rewarder_url"):  # never a fuzzed host
            if case.body.get(key) is not None:
                case.body[key] = unreachable

    def known_run(case: Any, data: st.DataObject) -> None:
        if run_ids and data.draw(st.booleans(), label="known run"):
            case.path_parameters["run_id"] = data.draw(st.sampled_from(run_ids), label="run id")

    def collect_run_id(case: Any, response: Any) -> None:
        if response.status_code == 202:
            run_ids.append(response.json()["id"])

    campaign = Campaign("orchestrator", url, on_response=collect_run_id)
    prepare = {"POST /iterations": real_run}
    prepare |= {
        label: known_run
        for label in (
            "GET /iterations/{run_id}",
            "POST /iterations/{run_id}/cancel",
            "GET /iterations/{run_id}/metrics.png",
        )
    }
    run_campaign(campaign, authenticated=45, anonymous=6, prepare=prepare)
    assert run_ids, "no fuzzed run body was accepted: the run routes only saw unknown ids"
    assert campaign.statuses[("GET /iterations/{run_id}", 200)] > 0

    # Leftovers: cancel what is still queued or running, so the test ends with nothing in flight.
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        views = client.get("/iterations", params={"limit": 500}).json()
        assert {view["id"] for view in views} >= set(run_ids)
        for view in views:
            if view["status"] in ("queued", "running"):
                assert client.post(f"/iterations/{view['id']}/cancel").status_code in (200, 409)
        deadline = time.monotonic() + 30
        statuses = collections.Counter(v["status"] for v in views)
        while statuses.keys() & {"queued", "running"} and time.monotonic() < deadline:
            time.sleep(0.5)
            statuses = collections.Counter(v["status"] for v in client.get("/iterations").json())
        assert not statuses.keys() & {"queued", "running"}, statuses
        assert client.get("/health").status_code == 200
    reliability_log(
        "bad-input",
        "schemathesis fuzzing of the orchestrator API",
        "schemathesis 4 positive and negative cases for all 6 operations of /openapi.json against a "
        "real orchestrator (token on, SQLite, path roots, unreachable generator/rewarder); half the "
        "valid run bodies carried real paths, so runs were created, started and failed or were "
        "cancelled, and the run routes were fuzzed with their ids; then without the token",
        f"{campaign.summary()}; {len(run_ids)} runs created, final states {dict(statuses)}",
        requests=campaign.requests,
        server_errors=campaign.server_errors,
    )


def malformed_jobs(valid: dict[str, Any], outside: Path) -> list[tuple[str, str, list[Any], str]]:
    """``(case, task, args, what the failure must say)``: messages a client that skips validation, or
    anyone with write access to Redis, could put on the queue."""
    training = valid["training"]
    return [
        ("no fields", TASK_SFT, [{}], "invalid SFTJob"),
        ("not an object", TASK_SFT, ["train everything"], "invalid SFTJob"),
        ("no argument", TASK_SFT, [], "TypeError"),
        (
            "wrong types",
            TASK_SFT,
            [{**valid, "model": 5, "data": ["x"], "output_dir": None}],
            "invalid SFTJob",
        ),
        ("unknown field", TASK_SFT, [{**valid, "shell": "rm -rf /"}], "invalid SFTJob"),
        ("job id with ..", TASK_SFT, [{**valid, "job_id": "../../escape"}], "invalid SFTJob"),
        ("job id '..'", TASK_SFT, [{**valid, "job_id": ".."}], "would name output_dir itself or its parent"),
        (
            "output_dir out of the roots",
            TASK_SFT,
            [{**valid, "output_dir": str(outside)}],
            "TRAINER_PATH_ROOTS",
        ),
        (
            "data path with ..",
            TASK_SFT,
            [{**valid, "data": f"{valid['output_dir']}/../../../../etc/passwd"}],
            "TRAINER_PATH_ROOTS",
        ),
        ("NUL in a path", TASK_SFT, [{**valid, "data": "sft\x00.json"}], "invalid SFTJob"),
        ("1 MB model name", TASK_SFT, [{**valid, "model": "m" * 1_000_000}], "invalid SFTJob"),
        (
            "huge hyper-parameters",
            TASK_SFT,
            [{**valid, "training": {**training, "epochs": 1e308, "max_length": 10**12, "max_steps": 2**80}}],
            "invalid SFTJob",
        ),
        (
            "negative batch size",
            TASK_REWARD_MODEL,
            [{**valid, "training": {**training, "per_device_batch_size": -1}}],
            "invalid RewardModelJob",
        ),
        ("eval_fraction 1.5", TASK_REWARD_MODEL, [{**valid, "eval_fraction": 1.5}], "invalid RewardModelJob"),
    ]


def test_trainer_queue_rejects_malformed_jobs_and_keeps_serving(
    tiny_models: dict[str, Path], redis_url: str, tmp_path: Path, reliability_log
) -> None:
    """The trainer has no HTTP surface: its input is the Celery queue. Malformed job dicts go straight
    onto it (no client-side validation), to a real worker confined to ``TRAINER_PATH_ROOTS``; each must
    fail with a message naming what is wrong, nothing may be written, and the same worker must then
    run a valid job."""
    root = tmp_path / "jobs"
    data = root / "sft.json"
    root.mkdir()
    write_text2text(data, [PromptResponse(f"Question {i}:", f" answer {i}.") for i in range(8)])
    valid = SFTJob(
        job_id="valid-after-bad-input",
        model=str(tiny_models["policy"]),
        data=str(data),
        output_dir=str(root / "out"),
        training=TrainingConfig(max_steps=1, per_device_batch_size=8, max_length=32),
    )
    outside = tmp_path / "outside"
    cases = malformed_jobs({**valid.model_dump(mode="json"), "job_id": "malformed"}, outside)
    # A queue of its own (the worker's --queues, the last value winning): a worker of another test on
    # the same Redis must not take these messages, nor this worker theirs.
    queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    worker = start_process(
        "services.trainer",
        "--hostname=fuzz@%h",
        f"--queues={queue}",
        log_dir=tmp_path,
        name="worker",
        env={"REDIS_URL": redis_url, "TRAINER_PATH_ROOTS": json.dumps([str(root), str(valid.model)])},
    )
    producer = make_celery_app("fuzz-producer", redis_url)
    started = time.monotonic()
    try:
        with TrainerClient(redis_url, retry_seconds=10) as client:
            for index, (_, task, args, _) in enumerate(cases):
                producer.send_task(task, args=args, task_id=f"{queue}-{index}", queue=queue)
            errors: dict[str, str] = {}
            for index, (name, _, _, expected) in enumerate(cases):
                try:
                    client.wait(f"{queue}-{index}", timeout=60, poll_interval=0.1)
                except JobFailed as exc:
                    errors[name] = exc.message
                    assert expected in exc.message, (name, exc.message)
                else:
                    raise AssertionError(f"malformed job {name!r} succeeded")
            # What TrainerClient.submit sends, on this queue.
            payload = valid.model_dump(mode="json")
            producer.send_task(TASK_SFT, args=[payload], task_id=valid.job_id, queue=queue)
            result = client.wait(valid.job_id, timeout=120, poll_interval=0.2)
        assert Path(result.checkpoint, "model.safetensors").exists()
        assert worker.alive(), worker.log_tail()
    finally:
        producer.close()
        worker.stop(timeout=5)
    assert not outside.exists()
    assert sorted(p.name for p in (root / "out").iterdir()) == [valid.job_id]
    example = " ".join(errors["job id with .."].split())[:110] + "..."
    reliability_log(
        "bad-input",
        "malformed training jobs on the trainer's Celery queue",
        "send_task straight to a real worker (TRAINER_PATH_ROOTS set), no client-side validation: "
        + "; ".join(name for name, *_ in cases)
        + "; then a valid 1-step SFT job on the same worker",
        f"all {len(cases)} failed with a message naming the problem (e.g. {example!r}), "
        f"nothing written outside the job's own output; the worker then trained the valid job "
        f"({time.monotonic() - started:.0f} s in all)",
        messages=len(cases) + 1,
    )


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
