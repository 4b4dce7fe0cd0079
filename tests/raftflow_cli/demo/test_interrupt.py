"""Ctrl-C and SIGTERM: ``raftflow up`` and ``raftflow demo`` run as real subprocesses of the installed
entry point, are signalled, and must exit promptly leaving no process and no half-written artifact."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raftflow_cli.demo.stack import pid_alive, processes_in_groups

EXIT_BOUND_S = 40.0  # services get SIGTERM together, SIGKILL after an 8 s grace
SERVICES = {"trainer", "generator", "proxy_rewarder", "gold_rewarder", "orchestrator"}


def raftflow_argv(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("raftflow")
    if script.exists():
        return [str(script), *args]
    entry = "import sys; from raftflow_cli.commands import main; sys.exit(main())"
    return [sys.executable, "-c", entry, *args]


@contextlib.contextmanager
def running(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The command in its own session; whatever happens in the test, nothing it started survives."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded Redis
    with log.open("wb") as sink:
        process = subprocess.Popen(
            raftflow_argv(*args), stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        stack_file = log.parent / "run" / "stack.json"
        if stack_file.exists():  # a safety net for a failed test, not part of what is tested
            stack = json.loads(stack_file.read_text())
            for service in stack["services"].values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(service["process_group"], signal.SIGKILL)
            if stack["redis"]["pid"]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stack["redis"]["pid"], signal.SIGKILL)


def wait_for(
    condition: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"exited early ({process.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"condition not reached in {timeout}s:\n{log.read_text()[-3000:]}")


def read_stack(run: Path) -> dict:
    try:
        return json.loads((run / "stack.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def assert_nothing_left(run: Path, stack: dict) -> None:
    final = read_stack(run)
    assert final["stopped"] is True
    groups = {service["process_group"] for service in stack["services"].values()}
    assert processes_in_groups(groups) == [], "a service (or one of its workers) outlived the stack"
    assert not pid_alive(stack["redis"]["pid"])
    leftovers = [p for p in run.rglob(".*") if ".tmp" in p.name]
    assert leftovers == [], f"temp entries left behind: {leftovers}"


def signal_and_wait(process: subprocess.Popen[bytes], sig: signal.Signals) -> tuple[int, float]:
    sent = time.monotonic()
    process.send_signal(sig)
    code = process.wait(timeout=EXIT_BOUND_S)
    return code, time.monotonic() - sent


def test_ctrl_c_stops_raftflow_up_and_every_service(tmp_path: Path) -> None:
    run, log = tmp_path / "run", tmp_path / "up.log"
    with running(["up", "--out", str(run)], log) as process:
        wait_for(lambda: read_stack(run).get("ready") is True, 180, process, log)
        stack = read_stack(run)
        assert set(stack["services"]) == {
            "trainer",
            "generator",
            "proxy_rewarder",
            "gold_rewarder",
            "orchestrator",
        }
        banner = log.read_text()
        assert "stack is up" in banner and "Authorization: Bearer" in banner and "/iterations" in banner
        assert all(pid_alive(s["pid"]) for s in stack["services"].values())

        code, took = signal_and_wait(process, signal.SIGINT)

    assert code == 0, log.read_text()[-2000:]
    assert took < EXIT_BOUND_S
    assert_nothing_left(run, stack)


def test_sigterm_mid_training_leaves_no_half_written_checkpoint(tmp_path: Path) -> None:
    """Interrupted while the SFT job is writing into its staging dir: the job's output never appears
    half-done, the staging dir is gone, and no report claims a result."""
    run, log = tmp_path / "run", tmp_path / "demo.log"
    checkpoints = run / "checkpoints"

    def training() -> bool:
        return checkpoints.exists() and any(p.name.startswith(".demo-sft-") for p in checkpoints.iterdir())

    with running(["demo", "--fast", "--sft-steps", "100000", "--out", str(run)], log) as process:
        wait_for(training, 180, process, log)
        stack = read_stack(run)
        code, took = signal_and_wait(process, signal.SIGTERM)

    assert code == 130, log.read_text()[-2000:]
    assert took < EXIT_BOUND_S
    assert "interrupted" in log.read_text()
    assert_nothing_left(run, stack)
    assert not any(p.name.startswith("demo-sft-") for p in checkpoints.iterdir())
    assert not (run / "report.json").exists()


def test_a_rerun_cancels_the_run_an_interrupted_demo_left_active(tmp_path: Path) -> None:
    """The store in the run directory outlives a killed demo; its active run names the dead stack's
    ports, so a rerun cancels it (instead of the orchestrator resuming it ahead of the new one)."""
    import httpx

    from raftflow_cli.demo.config import DemoConfig
    from raftflow_cli.demo.pipeline import DemoPipeline

    runs = [{"id": "old", "status": "running"}, {"id": "older", "status": "queued"},
            {"id": "done", "status": "succeeded"}, {"id": "gone", "status": "cancelled"}]  # fmt: skip
    cancelled: list[str] = []

    def orchestrator(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/iterations":
            return httpx.Response(200, json=runs)
        cancelled.append(request.url.path.split("/")[2])
        return httpx.Response(200, json={})

    said: list[str] = []
    pipeline = DemoPipeline(DemoConfig(), tmp_path, say=said.append)
    with httpx.Client(base_url="http://orchestrator", transport=httpx.MockTransport(orchestrator)) as http:
        pipeline.cancel_stale_runs(http)
    assert cancelled == ["old", "older"]
    assert len(said) == 2 and "interrupted demo" in said[0]
