"""Where experiment trackers write when the user did not say: under a directory raftflow owns, offline.

Both the orchestrator (run metrics per iteration) and the trainer (loss and learning rate per step)
log through the trackers' own libraries, which read their configuration from environment variables.
These defaults make every tracker work on a machine with no account and no server, and leave any
setting the user made alone: ``MLFLOW_TRACKING_URI`` (a server, or a SQLite file here; MLflow 3
refuses its old file store), ``WANDB_MODE`` (offline unless ``WANDB_API_KEY`` is set), ``WANDB_DIR``,
``WANDB_PROJECT`` and ``TRACKIO_DIR`` (read by trackio when it is first imported).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PROJECT = "raftflow"


def tracker_defaults(base_dir: Path) -> dict[str, str]:
    base = base_dir.resolve()
    defaults = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": PROJECT,
        "WANDB_DIR": str(base),
        "WANDB_PROJECT": PROJECT,
        "TRACKIO_DIR": str(base / "trackio"),
    }
    if not os.environ.get("WANDB_API_KEY"):
        defaults["WANDB_MODE"] = "offline"
    return defaults


def apply_tracker_defaults(base_dir: Path) -> None:
    """Set the defaults above in this process's environment where the user left them unset."""
    base_dir.mkdir(parents=True, exist_ok=True)
    for name, value in tracker_defaults(base_dir).items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def tracker_environment(base_dir: Path) -> Iterator[None]:
    """The defaults above for one job only: a worker child runs many jobs with different output
    dirs, so what it set is removed again afterwards. Not TRACKIO_DIR: trackio reads it once, at its
    first import, so a job's trackio run goes where TRACKIO_DIR (or trackio's default) says."""
    base_dir.mkdir(parents=True, exist_ok=True)
    added = {
        k: v for k, v in tracker_defaults(base_dir).items() if k != "TRACKIO_DIR" and k not in os.environ
    }
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
