"""The whole raftflow stack as local processes: Redis, trainer worker, generator, proxy and gold
rewarders, orchestrator, on free loopback ports, with one random API token per run.

Used by ``raftflow demo`` (which drives it) and ``raftflow up`` (which leaves it to the user). Every
child runs in its own session, so a Ctrl-C in the terminal reaches only this process, which then stops
the children in order (SIGTERM to each process group, SIGKILL after a grace period) and removes the
temp entries that an interrupted writer may have left. ``stack.json`` in the run directory names every
child's pid, URL and log, so a user (or a test) can check that none survived.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from raftflow.atomic import write_json_atomic
from raftflow.processes import ServiceProcess, python_module
from raftflow.server import free_port
from raftflow_cli.embedded_redis import EmbeddedRedis

GOLD_FUNCTION = "raftflow.rewards.sentiment:vader_positivity"
STOP_GRACE_SECONDS = 8.0
# Names of the entries an interrupted atomic writer leaves: raftflow.atomic's ".NAME.*.tmp" files,
# the trainer's ".JOB_ID.tmp-*" staging dirs, tiny_models' ".policy.*" dirs. Nothing ever reads them.
_TEMP_PATTERNS = (".*.tmp", ".*.tmp-*", ".policy.*", ".reward.*")


class StackInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: unwind to the ``finally`` that stops the stack. A KeyboardInterrupt,
    so code that already handles Ctrl-C handles SIGTERM the same way."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`StackInterrupted` in the main thread while the block runs.

    Python turns SIGINT into KeyboardInterrupt already, but SIGTERM (what ``kill``, systemd and CI send)
    would end the process at once, leaving every child running: this routes both through the cleanup.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise StackInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Inside the block, SIGINT/SIGTERM are recorded instead of raised: the shutdown itself must not be
    cut short by an impatient second Ctrl-C (that is how children get left behind). Every step of the
    shutdown has its own time limit, so it still ends promptly."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# The parts of a run directory that the stack and the demo write; only these are swept, so a run
# directory pointed at a folder holding other things never loses anything of the user's.
OWNED_SUBDIRS = ("models", "data", "checkpoints", "artifacts", "eval", "logs")


def sweep_temp_entries(root: Path) -> list[Path]:
    """Remove what interrupted atomic writers left in the run directory (its top level and the
    sub-directories the run owns; see ``_TEMP_PATTERNS``); returns them. Final files are written by
    rename, so there is never a half-written one to remove."""
    removed: list[Path] = []
    if not root.exists():
        return removed
    candidates = [p for pattern in _TEMP_PATTERNS for p in root.glob(pattern)]
    for sub in OWNED_SUBDIRS:
        if (root / sub).is_dir():
            candidates += [p for pattern in _TEMP_PATTERNS for p in (root / sub).rglob(pattern)]
    for path in candidates:
        if not path.exists():
            continue  # inside a directory removed a moment ago
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@dataclass
class StackSettings:
    """Where the stack keeps its state, and how its services run."""

    run_dir: Path
    torch_threads: int = 1
    start_timeout: float = 180.0
    redis_url: str | None = None  # None: an embedded redis-server for this run
    offline: bool = True  # HF_HUB_OFFLINE for the services: local checkpoints only, no 45 s hub retries
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Non-empty: the directories run and job paths must resolve inside (ORCHESTRATOR_PATH_ROOTS and
    # TRAINER_PATH_ROOTS); empty leaves them unconfined.
    path_roots: tuple[Path, ...] = ()


class LocalStack:
    """Start, describe and stop the services of one run. Use as a context manager (or call
    :meth:`close`); every ``start_*`` method is safe to call once."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir.resolve()
        self.logs = self.run_dir / "logs"
        self.artifacts = self.run_dir / "artifacts"
        self.token = settings.token
        self.redis: EmbeddedRedis | None = None
        self.redis_url = settings.redis_url or ""
        self.redis_pid: int | None = None
        self.processes: dict[str, ServiceProcess] = {}
        self.urls: dict[str, str] = {}
        self.ready = False  # set by the caller once everything it started answers
        self.closed = False

    # -- environment ---------------------------------------------------------------------------------

    def service_env(self) -> dict[str, str]:
        """What every child gets: the run's token, one torch thread each (they share the CPU; several
        multi-threaded torch processes on 2 cores slow each other 10x), the queue, and (unless hub ids
        are served) the offline switches."""
        offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        roots = json.dumps([str(root) for root in self.settings.path_roots])
        confined = {"ORCHESTRATOR_PATH_ROOTS": roots, "TRAINER_PATH_ROOTS": roots}
        return {
            **(offline if self.settings.offline else {}),
            **(confined if self.settings.path_roots else {}),
            "RAFTFLOW_API_TOKEN": self.token,
            "RAFTFLOW_TORCH_THREADS": str(self.settings.torch_threads),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": self.redis_url,
            "ARTIFACTS_DIR": str(self.artifacts),
        }

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    # -- start ---------------------------------------------------------------------------------------

    def start_queue(self) -> str:
        """Redis (embedded unless a URL was given) and the trainer worker; returns the Redis URL."""
        if not self.redis_url:
            self.redis = EmbeddedRedis(data_dir=self.run_dir / "redis").start()
            self.redis_url = self.redis.url
            self.redis_pid = self.redis.process.pid if self.redis.process else None
        self._spawn("trainer", python_module("services.trainer"), health_url=None)
        self.record()
        return self.redis_url

    def start_generator(self, model: str | Path) -> str:
        return self._spawn_http("generator", "services.generator", "--model", str(model))

    def start_rewarder(
        self,
        name: str,
        model: str | Path | None = None,
        function: str | None = None,
        pair_format: str = "hh",
    ) -> str:
        """A rewarder serving a reward model (``--model``; pairs formatted as ``pair_format``: the demo's
        pairs are written in HH form, a user's model may want ``auto``) or a ``module:function``."""
        source = ["--model", str(model), "--format", pair_format] if model else ["--function", str(function)]
        return self._spawn_http(name, "services.rewarder", *source)

    def start_orchestrator(self, generator_url: str, rewarder_url: str) -> str:
        """The orchestrator, with the stack's other services as the URLs a run may name (the demo's runs
        name the gold rewarder per run): start it after them."""
        env = {
            "GENERATOR_URL": generator_url,
            "REWARDER_URL": rewarder_url,
            "ORCHESTRATOR_ALLOWED_SERVICE_URLS": json.dumps(sorted(self.urls.values())),
            "DATABASE_URL": f"sqlite:///{self.run_dir / 'orchestrator.db'}",
        }
        return self._spawn_http("orchestrator", "orchestrator", env=env)

    def wait_healthy(self, *names: str) -> None:
        """Wait for the named HTTP services (all started ones by default) together: they load models in
        parallel, so the slowest decides, not the sum."""
        targets = [self.processes[n] for n in (names or self.processes) if self.processes[n].health_url]
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            for future in [pool.submit(p.wait_healthy, self.settings.start_timeout) for p in targets]:
                future.result()
        self.record()

    def wait_worker_ready(self, timeout: float = 120.0) -> bool:
        """True once the Celery worker logs that it is ready (it has no HTTP endpoint). Jobs sent before
        that simply wait in the queue, so callers may also go on without it."""
        worker = self.processes["trainer"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError(f"the trainer worker exited during start-up:\n{worker.log_tail()}")
            with contextlib.suppress(FileNotFoundError):
                if " ready." in worker.log_path.read_text(errors="replace"):
                    return True
            time.sleep(0.2)
        return False

    def _spawn_http(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self._spawn(name, python_module(module, "--port", str(port), *args), f"{url}/health", env)
        self.urls[name] = url
        return url

    def _spawn(
        self, name: str, argv: list[str], health_url: str | None, env: dict[str, str] | None = None
    ) -> ServiceProcess:
        if self.closed:
            raise RuntimeError("the stack is shut down")
        if name in self.processes:
            raise RuntimeError(f"{name} is already started")
        process = ServiceProcess(
            name,
            argv,
            log_path=self.logs / f"{name}.log",
            env={**self.service_env(), **(env or {})},
            cwd=_repo_root(),
            health_url=health_url,
        )
        self.processes[name] = process.start()
        self.record()
        return process

    # -- describe ------------------------------------------------------------------------------------

    def describe(self) -> dict:
        """What ``stack.json`` holds: no secrets (the token is printed, never written)."""
        return {
            "pid": os.getpid(),
            "run_dir": str(self.run_dir),
            "redis": {
                "url": self.redis_url,
                "embedded": self.redis is not None,
                "pid": self.redis_pid,
            },
            "services": {
                name: {
                    "pid": p.pid,
                    "process_group": p.pid,  # each child leads its own session and process group
                    "url": self.urls.get(name),
                    "log": str(p.log_path),
                    "alive": p.alive(),
                }
                for name, p in self.processes.items()
            },
            "ready": self.ready,
            "stopped": self.closed,
        }

    def record(self) -> None:
        write_json_atomic(self.run_dir / "stack.json", self.describe())

    def child_pids(self) -> list[int]:
        pids = [p.pid for p in self.processes.values()]
        if self.redis_pid is not None:
            pids.append(self.redis_pid)
        return pids

    # -- stop ----------------------------------------------------------------------------------------

    def close(self) -> list[Path]:
        """Stop every child (services first, then Redis), sweep temp entries; returns what was swept.
        Idempotent. Signals that arrive meanwhile are deferred, not allowed to cut it short."""
        if self.closed:
            return []
        with signals_deferred():
            # Every service at once: each gets SIGTERM, then SIGKILL after the grace period.
            services = list(self.processes.values())
            with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
                list(pool.map(lambda p: p.stop(timeout=STOP_GRACE_SECONDS), services))
            # stop() signals a group only while its leader lives; a worker whose leader died first
            # (a Celery pool child, say) would outlive it, so kill whatever is left in each group.
            for pid in processes_in_groups({p.pid for p in services}):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if self.redis is not None:
                self.redis.stop()
                shutil.rmtree(self.redis.data_dir, ignore_errors=True)
            self.closed = True
            swept = sweep_temp_entries(self.run_dir)
            self.record()
        return swept

    def __enter__(self) -> LocalStack:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _repo_root() -> Path:
    """Where ``python -m services.*`` and ``python -m orchestrator`` resolve: the installed package's
    parent (an editable install points at the repository)."""
    import raftflow

    return Path(raftflow.__file__).resolve().parents[1]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie (used by tests and by ``up``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
    return True


def processes_in_groups(groups: set[int]) -> list[int]:
    """Pids of live processes whose process group is in ``groups`` (Linux ``/proc``): a service's
    workers (Celery's pool children, uvicorn's) share its group, so this finds any that outlived it."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            state, pgid = fields[0], int(fields[2])
            if pgid in groups and state != "Z":
                found.append(int(stat.parent.name))
    return found
