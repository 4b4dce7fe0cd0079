"""A real stack for the orchestrator tests: generator, rewarder, Celery worker and orchestrator as
subprocesses on loopback, on tiny models, with the real Redis (a dedicated DB) and SQLite/PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from raftflow.processes import ServiceProcess
from tests.processes import redis_db, start_process, start_service

WORDS = [
    "the",
    "cat",
    "dog",
    "sun",
    "rain",
    "tree",
    "river",
    "stone",
    "light",
    "night",
    "day",
    "sea",
    "wind",
    "fire",
    "road",
    "home",
]


def write_prompts(path: Path, count: int) -> Path:
    """Short distinct prompts in the JSONL shape (one {"prompt": ...} per line)."""
    lines = [
        json.dumps({"prompt": f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} {i}"})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Stack:
    tmp: Path
    models: dict[str, Path]
    prompts: Path
    redis_url: str
    generator_url: str
    rewarder_url: str
    env: dict[str, str]
    processes: list[ServiceProcess]

    def start_orchestrator(
        self,
        state_dir: Path,
        name: str = "orchestrator",
        env: dict[str, str] | None = None,
        database_url: str | None = None,
    ) -> tuple[ServiceProcess, str]:
        """An orchestrator whose artifacts (and SQLite DB, unless ``database_url`` names another store)
        live in ``state_dir``: start a second one on the same dir to play a restart; use another dir
        for an independent one. ``env`` adds settings."""
        env = {
            **self.env,
            **(env or {}),
            "ARTIFACTS_DIR": str(state_dir / "artifacts"),
            "DATABASE_URL": database_url or f"sqlite:///{state_dir / 'orchestrator.db'}",
        }
        process, url = start_service("orchestrator", log_dir=self.tmp, name=name, env=env, timeout=60)
        self.processes.append(process)
        return process, url

    def start_service(self, module: str, model: Path, name: str) -> tuple[ServiceProcess, str]:
        """Another generator or rewarder on the stack's Redis and settings, stopped with the stack."""
        process, url = start_service(module, "--model", str(model), log_dir=self.tmp, name=name, env=self.env)
        self.processes.append(process)
        return process, url

    @staticmethod
    def wait(base_url: str, run_id: str, statuses: set[str], timeout: float = 240.0, until=None) -> dict:
        return wait_for_run(base_url, run_id, statuses, timeout, until)

    def minimal_body(self, **overrides: object) -> dict:
        body = {
            "policy": str(self.models["policy"]),
            "prompts": str(self.prompts),
            "num_iterations": 2,
            "prompts_per_iteration": 8,
            "k": 4,
            "selection": "local",
            "max_new_tokens": 16,
            "seed": 0,
        }
        body.update(overrides)
        return body


def wait_for_run(base_url: str, run_id: str, statuses: set[str], timeout: float = 240.0, until=None) -> dict:
    """Poll ``GET /iterations/{id}`` until its status is in ``statuses`` (or ``until(view)`` holds)."""
    deadline = time.monotonic() + timeout
    view: dict = {}
    while time.monotonic() < deadline:
        view = httpx.get(f"{base_url}/iterations/{run_id}", timeout=10).json()
        if view["status"] in statuses or (until is not None and until(view)):
            return view
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} still {view.get('status')} / {view.get('stage')} after {timeout}s")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_models, redis_server_url: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    # A DB index of its own, flushed: queued jobs of other tests must not reach this worker.
    redis_url = redis_db(redis_server_url, 14)
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        "REDIS_URL": redis_url,
        "RAFTFLOW_TORCH_THREADS": "1",
        "ORCHESTRATOR_RETRY_SECONDS": "30",
    }
    processes: list[ServiceProcess] = []

    def start(name: str, module: str, *args: str) -> str:
        process, url = start_service(module, *args, log_dir=tmp, name=name, env=env)
        processes.append(process)
        return url

    try:
        generator_url = start("generator", "services.generator", "--model", str(tiny_models["policy"]))
        rewarder_url = start("rewarder", "services.rewarder", "--model", str(tiny_models["reward"]))
        worker = start_process("services.trainer", log_dir=tmp, name="trainer", env=env)
        processes.append(worker)
        env = {**env, "GENERATOR_URL": generator_url, "REWARDER_URL": rewarder_url}
        yield Stack(
            tmp,
            tiny_models,
            write_prompts(tmp / "prompts.jsonl", 40),
            redis_url,
            generator_url,
            rewarder_url,
            env,
            processes,
        )
    finally:
        for proc in reversed(processes):
            proc.stop()
        redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture(params=["sqlite", "postgresql"])
def run_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (the orchestrator's SQLite file in its state dir), or a fresh PostgreSQL database of the
    test's own on the suite's server, dropped afterwards: whole runs go through both stores."""
    if request.param == "sqlite":
        yield None
        return
    import sqlalchemy

    server = sqlalchemy.make_url(request.getfixturevalue("postgres_url"))
    name = f"raftflow_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
