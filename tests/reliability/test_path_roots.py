"""Client paths cannot escape the configured roots: a real orchestrator with ORCHESTRATOR_PATH_ROOTS
and a real trainer worker with TRAINER_PATH_ROOTS, each sent `..` escapes, absolute paths outside,
and symlinks inside a root that point outside. Every escape is refused before anything is read, with
a message naming the field and the setting; paths inside, and hub ids for the policy, still work."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from orchestrator.paths import PATH_FIELDS
from raftflow.celery_config import LEDGER_DELIVERIES, ledger_key
from raftflow.clients.trainer import JobFailed, TrainerClient
from raftflow.processes import ServiceProcess
from raftflow.schemas.jobs import SFTJob, TrainingJob
from raftflow.schemas.runs import RunRequest
from services.trainer.paths import PATH_FIELDS as JOB_PATH_FIELDS
from tests.processes import start_process

PROMPTS = '{"prompt": "hello"}\n{"prompt": "world"}\n'


def build_tree(tmp: Path) -> dict[str, Path]:
    """``root/`` (the allowed data dir) with a prompt file and a policy dir, ``outside/`` with the same
    plus a secret, and symlinks in the root pointing out: a file, a directory, a policy dir."""
    root, outside = tmp / "root", tmp / "outside"
    for base in (root, outside):
        (base / "policy").mkdir(parents=True)
        (base / "prompts.jsonl").write_text(PROMPTS)
    (outside / "secret.jsonl").write_text('{"prompt": "the secret"}\n')
    (root / "link.jsonl").symlink_to(outside / "secret.jsonl")
    (root / "linkdir").symlink_to(outside)
    (root / "linkpolicy").symlink_to(outside / "policy")
    return {"root": root, "outside": outside}


def test_every_path_field_of_a_run_and_a_job_is_confined() -> None:
    """A new str field on RunRequest or a job must be added to PATH_FIELDS (or this list) on purpose."""
    not_paths = {"generator_backend", "selection", "job_id"}

    def str_fields(model: type) -> set[str]:
        hints = typing.get_type_hints(model)
        return {
            name for name in model.model_fields if str in typing.get_args(hints[name]) or hints[name] is str
        }

    assert str_fields(RunRequest) - not_paths == set(PATH_FIELDS)
    assert str_fields(TrainingJob) - not_paths == set(JOB_PATH_FIELDS)


@pytest.fixture
def orchestrator(tmp_path: Path, start_service) -> tuple[str, dict[str, Path], ServiceProcess]:
    tree = build_tree(tmp_path)
    env = {
        "ORCHESTRATOR_PATH_ROOTS": json.dumps([str(tree["root"])]),
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
        # Nothing listens there: accepted runs fail fast in the background, which is not under test.
        "GENERATOR_URL": "http://127.0.0.1:9",
        "REWARDER_URL": "http://127.0.0.1:9",
        "ORCHESTRATOR_RETRY_SECONDS": "0.5",
    }
    process, url = start_service("orchestrator", env=env, timeout=60)
    return url, tree, process


def post_run(url: str, **body: str) -> httpx.Response:
    return httpx.post(f"{url}/iterations", json={"num_iterations": 1, **body}, timeout=30)


def test_run_paths_outside_the_roots_get_422_naming_field_and_setting(orchestrator, reliability_log) -> None:
    url, tree, process = orchestrator
    root, outside = tree["root"], tree["outside"]
    good = {"policy": str(root / "policy"), "prompts": str(root / "prompts.jsonl")}
    escapes = {
        "`..` out of the root": ("prompts", str(root / ".." / "outside" / "secret.jsonl")),
        "absolute path outside": ("prompts", str(outside / "prompts.jsonl")),
        "symlinked file inside the root": ("prompts", str(root / "link.jsonl")),
        "path through a symlinked dir": ("eval_prompts", str(root / "linkdir" / "secret.jsonl")),
        "policy via `..`": ("policy", f"{root}/policy/../../outside/policy"),
        "policy symlinked out": ("policy", str(root / "linkpolicy")),
        # Shaped like a hub id, but a local directory (relative to the orchestrator's working
        # directory, the repo): it is read from disk, so it is a path and confined.
        "hub-id-shaped local dir": ("policy", "services/trainer"),
        "hub-id-shaped `..`": ("policy", "policy/.."),
    }
    for name, (field, value) in escapes.items():
        response = post_run(url, **{**good, field: value})
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", field], (name, detail)
        assert "ORCHESTRATOR_PATH_ROOTS" in detail["msg"] and "outside the allowed roots" in detail["msg"]
    assert httpx.get(f"{url}/iterations", timeout=10).json() == []  # no run was created

    # Inside the root (through `..` that stays inside, too), in ARTIFACTS_DIR, and a hub id policy.
    artifacts_prompts = Path(process.env["ARTIFACTS_DIR"]) / "prompts.jsonl"
    artifacts_prompts.write_text(PROMPTS)
    allowed = [
        good,
        {
            **good,
            "prompts": str(root / "policy" / ".." / "prompts.jsonl"),
            "eval_prompts": str(artifacts_prompts),
        },
        {**good, "policy": "openai-community/gpt2"},
    ]
    for body in allowed:
        response = post_run(url, **body)
        assert response.status_code == 202, (body, response.text)
    created = httpx.get(f"{url}/iterations", timeout=10).json()
    stored = {run["request"]["prompts"] for run in created}
    assert stored == {str((root / "prompts.jsonl").resolve())}  # runs use the resolved, checked path
    assert "openai-community/gpt2" in {run["request"]["policy"] for run in created}
    reliability_log(
        "security",
        "run paths escaping ORCHESTRATOR_PATH_ROOTS",
        "POST /iterations to a real orchestrator with one root: " + "; ".join(escapes),
        f"all {len(escapes)} got 422 on the escaping field (prompts, eval_prompts or policy) naming the "
        f"setting, and no run was created; {len(allowed)} bodies inside the root, in ARTIFACTS_DIR and "
        "with a hub id policy got 202 and store the resolved paths",
        requests=len(escapes) + len(allowed),
    )


def test_without_roots_paths_are_unconfined_and_start_up_warns(tmp_path: Path, start_service) -> None:
    tree = build_tree(tmp_path)
    env = {
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
        "GENERATOR_URL": "http://127.0.0.1:9",
        "REWARDER_URL": "http://127.0.0.1:9",
        "ORCHESTRATOR_RETRY_SECONDS": "0.5",
    }
    process, url = start_service("orchestrator", env=env, timeout=60)
    response = post_run(url, policy=str(tree["outside"] / "policy"), prompts=str(tree["root"] / "link.jsonl"))
    assert response.status_code == 202, response.text
    assert process.log_path.read_text().count("ORCHESTRATOR_PATH_ROOTS is not set") == 1


# -- trainer worker -----------------------------------------------------------------------------------


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """A real ``python -m services.trainer`` on the test Redis (as in tests/trainer/conftest.py)."""
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        process = start_process(
            "services.trainer",
            f"--hostname=paths{len(started)}@%h",
            log_dir=tmp_path,
            name=f"worker-{len(started)}",
            # No preload: these jobs must fail before training, so torch is never needed.
            env={"REDIS_URL": redis_url, "TRAINER_PRELOAD": "false", **env},
        )
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop(timeout=5)


def test_jobs_outside_the_roots_fail_before_reading_or_writing(
    tmp_path: Path, start_worker, redis_url: str, reliability_log
) -> None:
    tree = build_tree(tmp_path)
    root, outside = tree["root"], tree["outside"]
    (root / "sft.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    start_worker(TRAINER_PATH_ROOTS=json.dumps([str(root)]))
    base = {"model": str(root / "policy"), "data": str(root / "sft.jsonl"), "output_dir": str(root / "out")}
    escapes = {
        "data symlinked out of the root": ("data", {"data": str(root / "link.jsonl")}),
        "data through a symlinked dir": ("data", {"data": str(root / "linkdir" / "secret.jsonl")}),
        "model via `..`": ("model", {"model": f"{root}/../outside/policy"}),
        "model symlinked out": ("model", {"model": str(root / "linkpolicy")}),
        "output_dir absolute outside": ("output_dir", {"output_dir": str(outside / "ckpt")}),
        "output_dir through a symlinked dir": ("output_dir", {"output_dir": str(root / "linkdir" / "ckpt")}),
        "job_id `..`": ("job_id", {"job_id": ".."}),
    }
    outside_before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    with TrainerClient(redis_url, retry_seconds=10) as client:
        for index, (name, (field, change)) in enumerate(escapes.items()):
            job = SFTJob.model_validate({"job_id": f"escape-{index}", **base, **change})
            client.submit(job)
            with pytest.raises(JobFailed) as failed:
                client.wait(job.job_id, timeout=60, poll_interval=0.1)
            message = failed.value.message
            assert f"{field} " in message or f"{field} '" in message, (name, message)
            if field != "job_id":
                assert "TRAINER_PATH_ROOTS" in message and "nothing was read or written" in message
            assert "JobPathNotAllowed" in message, (name, message)
            # Refused before the ledger counted a delivery: the job never started.
            assert not redis.Redis.from_url(redis_url).hexists(ledger_key(job.job_id), LEDGER_DELIVERIES)
    assert not (root / "out").exists()
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == outside_before
    assert re.search(r"TRAINER_PATH_ROOTS is not set", (tmp_path / "worker-0.log").read_text()) is None
    reliability_log(
        "security",
        "training jobs escaping TRAINER_PATH_ROOTS",
        "jobs pushed through Redis to a real worker with one root: " + "; ".join(escapes),
        f"all {len(escapes)} failed with JobPathNotAllowed naming the field (and the setting) before the "
        "delivery ledger or any file was touched; no output dir was created and nothing outside changed",
        jobs=len(escapes),
    )


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
