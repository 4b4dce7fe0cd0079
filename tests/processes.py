"""The one way the tests start a raftflow process: ``python -m MODULE`` from the repository root with
its log in a file, waited for until ``GET /health`` answers (services) or started as is (workers).

Every fixture and test that needs a real service goes through :func:`start_service` (or the
``start_service`` fixture in tests/conftest.py, which also stops what it started), so the start-up
rules (port, log name, health wait, the log's tail on failure) live once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from raftflow.processes import ServiceProcess, python_module
from raftflow.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


def start_service(
    module: str,
    *args: str,
    log_dir: Path,
    name: str | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    health_path: str = "/health",
    headers: dict[str, str] | None = None,
    timeout: float = 90.0,
    wait: bool = True,
    drop_env: Sequence[str] = (),
) -> tuple[ServiceProcess, str]:
    """``python -m MODULE --port P ARGS``, healthy: ``(process, base_url)``. A service that exits or
    stays unhealthy is stopped and the error carries its log's tail. ``wait=False`` returns once the
    process is started (for tests of clients that wait for a service themselves)."""
    name = name or module
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_process(
        module, "--port", str(port), *args, log_dir=log_dir, name=name, env=env, drop_env=drop_env,
        log_name=f"{name}-{port}",
    )  # fmt: skip
    process.health_url = base_url + health_path
    if not wait:
        return process, base_url
    try:
        process.wait_healthy(timeout=timeout, headers=headers)
    except BaseException:
        process.stop()
        raise
    return process, base_url


def start_process(
    module: str,
    *args: str,
    log_dir: Path,
    name: str | None = None,
    env: dict[str, str] | None = None,
    drop_env: Sequence[str] = (),
    log_name: str | None = None,
) -> ServiceProcess:
    """``python -m MODULE ARGS`` started (a Celery worker, or a service waited for by the caller), in
    our environment plus ``env``, less the ``drop_env`` variables ``env`` does not set (a test of what
    a process does without a setting must not inherit the suite's). Its log: ``LOG_DIR/<log_name or
    name>.log``."""
    name = name or module
    process = ServiceProcess(
        name,
        python_module(module, *args),
        log_path=Path(log_dir) / f"{(log_name or name).replace('.', '_')}.log",
        env=env,
        cwd=REPO_ROOT,
    )
    for var in drop_env:
        if var not in (env or {}):
            process.env.pop(var, None)
    return process.start()


def redis_db(url: str, index: int) -> str:
    """``url`` with another DB index: the suite's fixtures keep their queues apart by DB."""
    return f"{url.rsplit('/', 1)[0]}/{index}"
