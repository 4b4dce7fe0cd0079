"""kill -9 of the orchestrator mid-run, then a restart on the same state: the run completes with
exactly num_iterations checkpoints, none trained twice, with the run store in SQLite and in
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx


def test_killed_orchestrator_resumes_the_run(stack, tmp_path: Path, run_store_url: str | None) -> None:
    first, base_url = stack.start_orchestrator(tmp_path, name="orchestrator-a", database_url=run_store_url)
    run_id = httpx.post(f"{base_url}/iterations", json=stack.minimal_body(), timeout=30).json()["id"]
    # Kill it while iteration 0 trains: samples and scores are on disk, the checkpoint is not.
    stack.wait(
        base_url,
        run_id,
        {"succeeded", "failed"},
        until=lambda v: v["stage"] == "train" and v["current_iteration"] == 0,
    )
    first.kill()

    second, base_url = stack.start_orchestrator(tmp_path, name="orchestrator-b", database_url=run_store_url)
    view = stack.wait(base_url, run_id, {"succeeded", "failed", "cancelled"})
    assert view["status"] == "succeeded", view["error"]
    assert [it["index"] for it in view["iterations"]] == [0, 1]
    assert all(it["stage"] == "done" for it in view["iterations"])

    checkpoints_dir = tmp_path / "artifacts" / "runs" / run_id / "checkpoints"
    # Exactly one checkpoint per iteration and no half-written temp dirs left behind.
    assert sorted(p.name for p in checkpoints_dir.iterdir()) == [f"{run_id}-iter000", f"{run_id}-iter001"]
    assert [it["checkpoint"] for it in view["iterations"]] == [
        str(checkpoints_dir / f"{run_id}-iter000"),
        str(checkpoints_dir / f"{run_id}-iter001"),
    ]
    second.stop()
