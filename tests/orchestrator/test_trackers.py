"""A run's metrics in each tracker, read back with the tracker's own library: one tracker run per
RAFT run (resumed after a restart, not duplicated), the iteration as the step, the outcome at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.trackers import RunTrackers, missing_libraries
from tests.tracker_readers import mlflow_metric, mlflow_run, tensorboard_scalars, trackio_logs, wandb_history

CONFIG = {"k": 4, "training": {"learning_rate": 0.001}}


@pytest.fixture
def tracking_env(tmp_path: Path, clean_tracker_env: None) -> Path:
    return tmp_path / "tracking"


def test_every_tracker_gets_the_iterations_and_the_outcome(tracking_env: Path) -> None:
    assert missing_libraries(["tensorboard", "mlflow", "wandb", "trackio"]) == []
    run_id = "run-all-four"
    trackers = RunTrackers(tracking_env, run_id, ["tensorboard", "mlflow", "wandb", "trackio"], CONFIG)
    trackers.log(0, {"on_policy_reward": 0.25, "distinct_2": 0.9, "nan_metric": float("nan")})
    trackers.log(1, {"on_policy_reward": 0.5, "distinct_2": 0.8})
    trackers.finish("succeeded")

    assert tensorboard_scalars(
        tracking_env / "tensorboard" / run_id, "raft/on_policy_reward"
    ) == pytest.approx({0: 0.25, 1: 0.5})
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert uri == f"sqlite:///{tracking_env.resolve() / 'mlflow.db'}"
    assert mlflow_metric(uri, run_id, "raft/distinct_2") == pytest.approx({0: 0.9, 1: 0.8})
    run = mlflow_run(uri, run_id)
    assert run.info.status == "FINISHED" and run.data.params["training.learning_rate"] == "0.001"
    history = wandb_history(tracking_env, run_id)
    assert [(row["_step"], row["raft/on_policy_reward"]) for row in history] == [(0, 0.25), (1, 0.5)]
    assert all("raft/nan_metric" not in row for row in history)  # non-finite values are not logged
    logs = trackio_logs(Path(os.environ["TRACKIO_DIR"]), "raftflow", run_id)
    assert [(row["step"], row["raft/on_policy_reward"]) for row in logs] == [(0, 0.25), (1, 0.5)]


def test_a_resumed_run_continues_its_tracker_run(tracking_env: Path) -> None:
    run_id = "run-resumed"
    first = RunTrackers(tracking_env, run_id, ["mlflow", "tensorboard"], CONFIG)
    first.log(0, {"on_policy_reward": 0.1})
    first.finish("interrupted")  # the orchestrator stopped mid-run
    second = RunTrackers(tracking_env, run_id, ["mlflow", "tensorboard"], CONFIG)
    second.log(1, {"on_policy_reward": 0.3})
    second.finish("cancelled")
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert mlflow_metric(uri, run_id, "raft/on_policy_reward") == pytest.approx({0: 0.1, 1: 0.3})  # one run
    assert mlflow_run(uri, run_id).info.status == "KILLED"
    assert tensorboard_scalars(
        tracking_env / "tensorboard" / run_id, "raft/on_policy_reward"
    ) == pytest.approx({0: 0.1, 1: 0.3})


def test_a_failing_tracker_is_dropped_and_the_others_go_on(tracking_env: Path, monkeypatch) -> None:
    from orchestrator import trackers as module

    class Broken:
        def __init__(self, *args) -> None:
            raise RuntimeError("no server")

    monkeypatch.setitem(module.ADAPTERS, "wandb", Broken)
    trackers = RunTrackers(tracking_env, "run-partial", ["wandb", "tensorboard"], CONFIG)
    trackers.log(0, {"on_policy_reward": 1.0})
    trackers.finish("failed")
    assert tensorboard_scalars(tracking_env / "tensorboard" / "run-partial", "raft/on_policy_reward") == {
        0: 1.0
    }
