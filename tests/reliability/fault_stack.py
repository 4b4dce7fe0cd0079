"""A real raftflow stack that the fault tests can break and repair: every process on a fixed port.

Unlike tests/orchestrator's stack, this one owns its Redis (an :class:`EmbeddedRedis` with a fixed
data dir and port, append-only), so a test can stop and start it without touching the machine's
Redis that other tests share; and every service keeps its port for the life of the stack, so a
killed generator, rewarder or orchestrator comes back at the URL the others already use.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from raftflow.celery_config import QUEUE, ledger_key
from raftflow.processes import ServiceProcess
from raftflow.server import free_port
from raftflow_cli.embedded_redis import EmbeddedRedis
from tests.processes import start_process

# The worker's redelivery knobs, short so that the job of a worker killed whole is re-queued within
# seconds: its lock expires after TRAINER_LOCK_TTL and a live worker's scan (every
# TRAINER_RESTORE_INTERVAL) re-queues it (services/trainer/orphans.py). The visibility timeout keeps
# its production default (24 h), so no test passes by waiting for it.
TRAINER_ENV = {
    "TRAINER_RESTORE_INTERVAL": "1",
    "TRAINER_LOCK_TTL": "3",
    "TRAINER_MAX_DELIVERIES": "5",
    "TRAINER_PROGRESS_INTERVAL": "0.1",
}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def bytes_waiting_at(port: int) -> int:
    """Bytes sent to the server on 127.0.0.1:``port`` that it has not read yet (the receive queues of
    its connections, /proc/net/tcp): > 0 once a request reached a paused service."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED
                waiting += int(fields[4].split(":")[1], 16)  # tx_queue:rx_queue
    return waiting


def pool_children(pid: int) -> list[int]:
    """The Celery pool processes of worker ``pid`` (Linux /proc)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@dataclass
class FaultStack:
    """Redis, generator, rewarder, trainer worker and orchestrator as local processes.

    ``services`` holds the live process of each name; :meth:`kill` SIGKILLs one (its whole process
    group: uvicorn or the Celery parent and its children) and :meth:`start` brings it back with the
    same arguments, port and state.
    """

    tmp: Path
    models: dict[str, Path]
    prompts: Path
    eval_prompts: Path
    retry_seconds: float = 30.0
    redis_server: EmbeddedRedis = field(init=False)
    ports: dict[str, int] = field(init=False)
    services: dict[str, ServiceProcess] = field(init=False, default_factory=dict)
    _starts: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.redis_server = EmbeddedRedis(data_dir=self.tmp / "redis", port=free_port())
        self.ports = {name: free_port() for name in ("generator", "rewarder", "orchestrator")}
        self.state_dir = self.tmp / "state"
        self.token = secrets.token_hex(16)  # as deployed: every service checks it, the orchestrator sends it

    # -- addresses -------------------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def orchestrator_url(self) -> str:
        return self.url("orchestrator")

    @property
    def artifacts(self) -> Path:
        return self.state_dir / "artifacts"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "RAFTFLOW_API_TOKEN": self.token,
            "REDIS_URL": self.redis_url,
            "RAFTFLOW_TORCH_THREADS": "1",
            "GENERATOR_URL": self.url("generator"),
            "REWARDER_URL": self.url("rewarder"),
            "ARTIFACTS_DIR": str(self.artifacts),
            "DATABASE_URL": f"sqlite:///{self.state_dir / 'orchestrator.db'}",
            "ORCHESTRATOR_RETRY_SECONDS": str(self.retry_seconds),
            # Several requests per sample stage, so "mid-sample" is a window a test can hit.
            "ORCHESTRATOR_SAMPLE_CHUNK_PROMPTS": "2",
            **TRAINER_ENV,
            **extra,
        }

    # -- processes -------------------------------------------------------------------------------

    def start(self, name: str, wait: bool = True, **env: str) -> ServiceProcess:
        """Start ``name`` (generator, rewarder, trainer, orchestrator) on its fixed port and state."""
        if name == "trainer":
            module, args = "services.trainer", [f"--hostname=trainer{self._starts.get(name, 0)}@%h"]
            health = None
        else:
            module = {"generator": "services.generator", "rewarder": "services.rewarder"}.get(name, name)
            model = {
                "generator": ["--model", str(self.models["policy"])],
                "rewarder": ["--model", str(self.models["reward"])],
            }.get(name, [])
            args = ["--port", str(self.ports[name]), *model]
            health = f"{self.url(name)}/health"
        count = self._starts[name] = self._starts.get(name, 0) + 1
        # The same port on every start (a restart is the same service to its clients), so not
        # tests.processes.start_service, which picks a free one.
        process = start_process(
            module, *args, log_dir=self.tmp / "logs", name=f"{name}-{count}", env=self.env(**env)
        )
        process.health_url = health
        self.services[name] = process
        if wait:
            self.wait_up(name)
        return process

    def wait_up(self, name: str, timeout: float = 90.0) -> None:
        process = self.services[name]
        if name == "trainer":
            # The worker is ready once its pool child exists (it then consumes the queue).
            wait_until(lambda: pool_children(process.pid), timeout, "the trainer's pool child")
        else:
            process.wait_healthy(timeout=timeout)

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group of ``name``: no handler, no cleanup runs."""
        self.services[name].kill()

    def pause(self, name: str) -> None:
        """SIGSTOP ``name``'s process group: it holds its connections but answers nothing, so a caller
        blocks mid-request (how a test lands a fault inside a stage that otherwise lasts milliseconds)."""
        os.killpg(self.services[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.killpg(self.services[name].pid, signal.SIGCONT)

    def restart(self, name: str, down_for: float = 0.0, **env: str) -> float:
        """Kill ``name``, leave it down ``down_for`` seconds, start it again and wait until it is up;
        returns the seconds it was unreachable."""
        started = time.monotonic()
        self.kill(name)
        time.sleep(down_for)
        self.start(name, **env)
        return time.monotonic() - started

    def restart_redis(self, down_for: float = 1.0) -> float:
        """Stop Redis (SIGTERM: it flushes the append-only file) and start it again on the same port
        and data dir; returns the seconds it was down."""
        started = time.monotonic()
        self.redis_server.stop()
        time.sleep(down_for)
        self.redis_server.start()
        return time.monotonic() - started

    def kill_redis(self, down_for: float = 1.0) -> float:
        """SIGKILL Redis (no flush) and start it again on the same port and data dir."""
        started = time.monotonic()
        self.redis_server.kill()
        time.sleep(down_for)
        self.redis_server.start()
        return time.monotonic() - started

    def start_all(self) -> None:
        self.redis_server.start()
        for name in ("generator", "rewarder", "trainer", "orchestrator"):
            self.start(name, wait=False)
        for name in ("generator", "rewarder", "trainer", "orchestrator"):
            self.wait_up(name)

    def stop_all(self) -> None:
        for process in reversed(list(self.services.values())):
            process.stop(timeout=5)
        self.redis_server.stop()

    def logs(self, lines: int = 30) -> str:
        """The tail of every live service's log: what a failed assertion shows."""
        return "\n".join(
            f"--- {name} ({p.log_path.name})\n{p.log_tail(lines)}" for name, p in self.services.items()
        )

    # -- runs ------------------------------------------------------------------------------------

    def body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "policy": str(self.models["policy"]),
            "prompts": str(self.prompts),
            "eval_prompts": str(self.eval_prompts),
            "max_eval_prompts": 2,
            "num_iterations": 2,
            "prompts_per_iteration": 8,
            "k": 4,
            "selection": "local",
            "max_new_tokens": 16,
            "seed": 0,
            # A few seconds of training per iteration, so "mid-job" is a window a test can hit.
            "training": {"max_steps": 150, "per_device_batch_size": 2, "learning_rate": 1e-3},
        }
        body.update(overrides)
        return body

    def submit(self, **overrides: Any) -> str:
        response = httpx.post(
            f"{self.orchestrator_url}/iterations",
            json=self.body(**overrides),
            headers=self.auth,
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["id"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def view(self, run_id: str) -> dict[str, Any] | None:
        """The run's view, or None while the orchestrator does not answer (killed, restarting)."""
        try:
            response = httpx.get(f"{self.orchestrator_url}/iterations/{run_id}", headers=self.auth, timeout=5)
        except httpx.TransportError:
            return None
        if response.status_code >= 500:
            return None
        response.raise_for_status()  # a 4xx is the test's own mistake: fail now, not at the timeout
        return response.json()

    def wait_for(
        self, run_id: str, until: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll the run until ``until(view)``; a run that ends (any final status) first is an error
        unless ``until`` accepts it."""

        def check() -> dict[str, Any] | None:
            view = self.view(run_id)
            if view is None:
                return None
            if until(view):
                return view
            if view["status"] in ("succeeded", "failed", "cancelled"):
                raise AssertionError(f"run ended {view['status']} before {what}: {view['error']}")
            return None

        try:
            return wait_until(check, timeout, what, interval=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def wait_finished(self, run_id: str, timeout: float = 150.0) -> dict[str, Any]:
        return self.wait_for(
            run_id,
            lambda v: v["status"] in ("succeeded", "failed", "cancelled"),
            timeout,
            f"run {run_id} to finish",
        )

    # -- what the tests check --------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.artifacts / "runs" / run_id

    def ledger(self, job_id: str) -> dict[str, int]:
        """The worker's counters for ``job_id`` (deliveries, trainings, completions)."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            raw = client.hgetall(ledger_key(job_id))
        finally:
            client.close()
        return {k.decode(): int(float(v)) for k, v in raw.items() if k != b"submitted"}

    def queue_drained(self) -> bool:
        client = redis.Redis.from_url(self.redis_url)
        try:
            return client.llen(QUEUE) == 0 and client.hlen("unacked") == 0
        finally:
            client.close()


def artifact_problems(run_dir: Path) -> list[str]:
    """Every file under ``run_dir`` that is half-written or does not load: leftover temp files or dirs,
    JSON/JSONL that does not parse, safetensors that do not load. Empty when the run dir is sound."""
    from safetensors.torch import load_file

    problems = []
    for path in sorted(run_dir.rglob("*")):
        if ".tmp" in path.name:
            problems.append(f"leftover temp: {path.relative_to(run_dir)}")
        elif path.suffix == ".json":
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                problems.append(f"corrupt JSON {path.relative_to(run_dir)}: {exc}")
        elif path.suffix == ".jsonl":
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    json.loads(line)
                except ValueError as exc:
                    problems.append(f"corrupt JSONL {path.relative_to(run_dir)}:{number}: {exc}")
        elif path.suffix == ".safetensors":
            try:
                load_file(path)
            except Exception as exc:  # any failure to load is the finding
                problems.append(f"unloadable {path.relative_to(run_dir)}: {exc.__class__.__name__}: {exc}")
    return problems
