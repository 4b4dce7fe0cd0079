"""A run's metrics, per iteration, in the user's experiment tracker: TensorBoard, MLflow, W&B, Trackio.

Each tracker is written through its own library, one small adapter each: the run is one tracker run
named by the run id (resumed, not duplicated, when an orchestrator restart picks the run up again),
the step is the iteration index, the metrics are the iteration's metrics under ``raft/``, the run's
request is the run's config/params, and the tracker run is closed with the run's outcome. Locations
default to ``ARTIFACTS_DIR/tracking`` and offline (:mod:`raftflow.tracking`). The training jobs of
the run log their loss and learning rate per step to the same trackers (``TrainingConfig.report_to``).

Tracking is advisory: a tracker that fails while the run goes on is logged and skipped, never the
reason a run fails. A tracker whose library is missing is refused when the run is posted (422).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from raftflow.schemas.jobs import Tracker
from raftflow.tracking import PROJECT

log = logging.getLogger(__name__)

OUTCOMES = {"succeeded": 0, "failed": 1, "cancelled": 2}


def missing_libraries(trackers: Sequence[str]) -> list[str]:
    """Trackers whose library is not installed here (``pip install 'raftflow[trackers]'``)."""
    return [name for name in trackers if importlib.util.find_spec(name) is None]  # module = tracker name


class TrackerRun(Protocol):
    def log(self, iteration: int, metrics: dict[str, float]) -> None: ...
    def finish(self, outcome: str) -> None: ...


class TensorBoardRun:
    """Event files in ``tracking/tensorboard/RUN_ID`` (tensorboard's own writer; no torch needed)."""

    def __init__(self, base: Path, run_id: str, config: dict[str, Any]) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(str(base / "tensorboard" / run_id))

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=f"raft/{k}", simple_value=v) for k, v in metrics.items()]
        self._writer.add_event(Event(wall_time=time.time(), step=iteration, summary=Summary(value=values)))
        self._writer.flush()

    def finish(self, outcome: str) -> None:
        self._writer.close()


class MlflowRun:
    """An MLflow run named RUN_ID in the experiment ``MLFLOW_EXPERIMENT_NAME`` (default raftflow)."""

    def __init__(self, base: Path, run_id: str, config: dict[str, Any]) -> None:
        from mlflow import MlflowClient

        self._client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
        experiment = self._client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(name)
        found = self._client.search_runs([experiment_id], filter_string=f"attributes.run_name = '{run_id}'")
        if found:  # the orchestrator restarted mid-run: continue the same tracker run
            self._run_id = found[0].info.run_id
        else:
            run = self._client.create_run(experiment_id, run_name=run_id, tags={"raftflow.run_id": run_id})
            self._run_id = run.info.run_id
            for key, value in _flat(config).items():
                self._client.log_param(self._run_id, key, str(value)[:6000])

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(f"raft/{k}", v, now, iteration) for k, v in metrics.items()]
        self._client.log_batch(self._run_id, metrics=batch)

    def finish(self, outcome: str) -> None:
        status = {"succeeded": "FINISHED", "failed": "FAILED"}.get(outcome, "KILLED")
        self._client.set_terminated(self._run_id, status)


class WandbRun:
    """A W&B run with id and name RUN_ID in ``WANDB_PROJECT`` (offline unless WANDB_API_KEY is set)."""

    def __init__(self, base: Path, run_id: str, config: dict[str, Any]) -> None:
        import wandb

        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            id=run_id,
            name=run_id,
            resume="allow",
            config=config,
            dir=os.environ.get("WANDB_DIR", str(base)),
            reinit="create_new",
        )

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        self._run.log({f"raft/{k}": v for k, v in metrics.items()}, step=iteration)

    def finish(self, outcome: str) -> None:
        import wandb

        self._run.finish(exit_code=OUTCOMES.get(outcome, 1))
        wandb.teardown()  # its process-wide settings would otherwise outlive the run (WANDB_DIR...)


class TrackioRun:
    """A Trackio run named RUN_ID in the project raftflow, stored locally (``TRACKIO_DIR``)."""

    def __init__(self, base: Path, run_id: str, config: dict[str, Any]) -> None:
        import trackio

        self._trackio = trackio
        self._run = trackio.init(project=PROJECT, name=run_id, resume="allow", config=config, embed=False)

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        self._run.log({f"raft/{k}": v for k, v in metrics.items()}, step=iteration)

    def finish(self, outcome: str) -> None:
        self._run.finish()


ADAPTERS: dict[str, type] = {
    "tensorboard": TensorBoardRun,
    "mlflow": MlflowRun,
    "wandb": WandbRun,
    "trackio": TrackioRun,
}


class RunTrackers:
    """The trackers one run reports to; every call is safe (a failing tracker is logged and dropped)."""

    def __init__(self, base: Path, run_id: str, trackers: Sequence[Tracker], config: dict[str, Any]) -> None:
        self._runs: dict[str, TrackerRun] = {}
        if not trackers:
            return
        from raftflow.tracking import apply_tracker_defaults

        apply_tracker_defaults(base)
        for name in trackers:
            try:
                self._runs[name] = ADAPTERS[name](base, run_id, config)
            except Exception:
                log.exception("run %s: tracker %s could not start; the run goes on without it", run_id, name)

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        finite = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
        for name, run in list(self._runs.items()):
            try:
                run.log(iteration, finite)
            except Exception:
                log.exception("tracker %s failed to log iteration %d; dropped for this run", name, iteration)
                self._runs.pop(name)

    def finish(self, outcome: str) -> None:
        for name, run in self._runs.items():
            try:
                run.finish(outcome)
            except Exception:
                log.exception("tracker %s failed to close", name)
        self._runs.clear()


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
