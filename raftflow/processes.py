"""Launch raftflow services as local processes and wait until they are healthy.

Used by the tests (real uvicorn servers on loopback), the demo and ``raftflow up``. A service counts
as up when ``GET <health_url>`` answers 200; a process that exits first is reported with the tail of
its log, so a failed start names its cause instead of timing out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


class ServiceProcess:
    """One child process with its log file. ``stop()`` sends SIGTERM (graceful), then SIGKILL."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: str | Path,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        health_url: str | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.health_url = health_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        # A new session: Ctrl-C in the parent's terminal does not hit the child directly, so the
        # parent decides the shutdown order; stop() signals the whole group (uvicorn, celery children).
        self.process = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout: float = 60.0, headers: dict[str, str] | None = None) -> None:
        if self.health_url is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            try:
                if httpx.get(self.health_url, timeout=2.0, headers=headers).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.name} not healthy at {self.health_url} after {timeout}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL the whole process group: the fault-injection path (no cleanup runs)."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if not self.alive():
            self._signal_group(signal.SIGKILL)  # the leader is gone; reap whatever it left in its group
            return
        self._signal_group(signal.SIGTERM)
        try:
            assert self.process is not None
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal_group(self, sig: signal.Signals) -> None:
        # Signal the group even when its leader has already exited: its children (uvicorn or Celery
        # workers) may still be alive in it.
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


def python_module(module: str, *args: str) -> list[str]:
    """Argv for ``python -m module args`` with the interpreter running us (the venv's)."""
    return [sys.executable, "-m", module, *args]
