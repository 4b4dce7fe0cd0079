"""``trainer: external``: a run waits after selection, the user fine-tunes the selected data with
anything (here ``raftflow train sft --local``) and posts the checkpoint; bad checkpoints are refused
with a 422 while the run keeps waiting; the wait survives an orchestrator restart; cancel ends it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from raftflow.data import load_pairs
from raftflow_cli.commands import main

WAITING = {"awaiting_checkpoint", "succeeded", "failed", "cancelled"}
FINISHED = {"succeeded", "failed", "cancelled"}


def train_by_hand(policy: str, data: str, out: Path, job_id: str) -> Path:
    args = [
        "train",
        "sft",
        "--local",
        "--model",
        policy,
        "--data",
        data,
        "--out",
        str(out),
        "--job-id",
        job_id,
    ]
    assert main([*args, "--max-steps", "2", "--batch-size", "4", "--lr", "1e-3"]) == 0
    return out / job_id


def test_external_run_waits_refuses_bad_checkpoints_survives_restart(stack, tmp_path: Path) -> None:
    process, base = stack.start_orchestrator(tmp_path, name="orchestrator-external")
    body = stack.minimal_body(trainer="external", num_iterations=2)
    created = httpx.post(f"{base}/iterations", json=body, timeout=30)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]

    view = stack.wait(base, run_id, WAITING)
    assert view["status"] == "awaiting_checkpoint", view["error"]
    waiting = view["awaiting_checkpoint"]
    assert waiting["iteration"] == 0
    assert waiting["submit_to"] == f"{base}/iterations/{run_id}/checkpoint"
    selected = load_pairs(waiting["selected_data"])
    assert 1 <= len(selected) <= 8  # one kept sample per prompt

    # Bad checkpoints: a 422 naming the problem, and the run keeps waiting.
    url = f"{base}/iterations/{run_id}/checkpoint"
    adapter = tmp_path / "adapter-only"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    for path, problem in (
        (tmp_path / "nowhere", "is not a directory"),
        (adapter, "LoRA adapter"),
        (stack.models["reward"], "not a causal language model"),
    ):
        refused = httpx.post(url, json={"path": str(path)}, timeout=60)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"][0]
        assert detail["loc"] == ["body", "path"] and problem in detail["msg"]
    assert httpx.post(url, json={"path": 3}, timeout=10).status_code == 422
    assert httpx.get(f"{base}/iterations/{run_id}", timeout=10).json()["status"] == "awaiting_checkpoint"

    # A restart while waiting: the new orchestrator waits for the same iteration.
    process.stop()
    process, base = stack.start_orchestrator(tmp_path, name="orchestrator-external-2")
    url = f"{base}/iterations/{run_id}/checkpoint"
    view = stack.wait(base, run_id, FINISHED, until=lambda v: v["awaiting_checkpoint"] is not None)
    assert view["status"] == "awaiting_checkpoint" and view["awaiting_checkpoint"]["iteration"] == 0

    first = train_by_hand(body["policy"], waiting["selected_data"], tmp_path / "mine", "iteration-0")
    accepted = httpx.post(url, json={"path": str(first)}, timeout=60)
    assert accepted.status_code == 200, accepted.text

    view = stack.wait(
        base, run_id, FINISHED, until=lambda v: v["current_iteration"] == 1 and v["awaiting_checkpoint"]
    )
    assert view["status"] == "awaiting_checkpoint"
    assert view["iterations"][0]["checkpoint"] == str(first.resolve()), json.dumps(view)
    assert view["policy"] == str(first.resolve())
    # Iteration 1 sampled from the posted checkpoint: the generator serves it (or already the next).
    served = httpx.get(f"{stack.generator_url}/v1/models", timeout=10).json()
    assert served["checkpoint"] == str(first.resolve())
    second = train_by_hand(
        str(first), view["awaiting_checkpoint"]["selected_data"], tmp_path / "mine", "iteration-1"
    )
    assert httpx.post(url, json={"path": str(second)}, timeout=60).status_code == 200
    view = stack.wait(base, run_id, FINISHED)
    assert view["status"] == "succeeded", view["error"]
    assert [it["checkpoint"] for it in view["iterations"]] == [str(first.resolve()), str(second.resolve())]
    late = httpx.post(url, json={"path": str(second)}, timeout=60)
    assert late.status_code == 409 and "not awaiting a checkpoint" in late.json()["detail"]
    process.stop()
    shutil.rmtree(tmp_path / "mine")


def test_cancel_while_waiting_and_queue_runs_refuse_posts(stack, tmp_path: Path) -> None:
    """Also: a posted path outside ORCHESTRATOR_PATH_ROOTS is refused before it is read."""
    roots = [str(stack.models["policy"].parent), str(stack.prompts.parent)]
    process, base = stack.start_orchestrator(
        tmp_path, name="orchestrator-external-cancel", env={"ORCHESTRATOR_PATH_ROOTS": json.dumps(roots)}
    )
    created = httpx.post(f"{base}/iterations", json=stack.minimal_body(trainer="external"), timeout=30)
    run_id = created.json()["id"]
    assert stack.wait(base, run_id, WAITING)["status"] == "awaiting_checkpoint"
    outside = shutil.copytree(stack.models["policy"], tmp_path / "outside-the-roots")
    refused = httpx.post(f"{base}/iterations/{run_id}/checkpoint", json={"path": str(outside)}, timeout=30)
    assert refused.status_code == 422 and "ORCHESTRATOR_PATH_ROOTS" in refused.json()["detail"][0]["msg"]
    cancelled = httpx.post(f"{base}/iterations/{run_id}/cancel", timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert stack.wait(base, run_id, FINISHED)["status"] == "cancelled"
    refused = httpx.post(f"{base}/iterations/{run_id}/checkpoint", json={"path": str(stack.models["policy"])})
    assert refused.status_code == 409

    queued = httpx.post(f"{base}/iterations", json=stack.minimal_body(num_iterations=1), timeout=30).json()[
        "id"
    ]
    refused = httpx.post(f"{base}/iterations/{queued}/checkpoint", json={"path": str(stack.models["policy"])})
    assert refused.status_code == 409 and "its trainer is 'queue'" in refused.json()["detail"]
    assert httpx.post(f"{base}/iterations/nope/checkpoint", json={"path": "/x"}).status_code == 404
    stack.wait(base, queued, FINISHED)
    process.stop()
