"""Read what the experiment trackers stored, with each tracker's own library (or, for W&B, its own
protobuf records), so tests check the values that landed, not that a call was made."""

from __future__ import annotations

import json
import struct
from pathlib import Path

Series = dict[int, float]  # step -> value


def tensorboard_scalars(logdir: Path, tag: str) -> Series:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir))
    accumulator.Reload()
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def mlflow_metric(tracking_uri: str, run_name: str, key: str) -> Series:
    from mlflow import MlflowClient

    run = mlflow_run(tracking_uri, run_name)
    return {m.step: m.value for m in MlflowClient(tracking_uri).get_metric_history(run.info.run_id, key)}


def mlflow_run(tracking_uri: str, run_name: str):
    """The one MLflow run named ``run_name`` in any experiment (fails if there are several)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, filter_string=f"attributes.run_name = '{run_name}'")
    return run


def trackio_logs(trackio_dir: Path, project: str, run: str) -> list[dict]:
    import sqlite3

    with sqlite3.connect(trackio_dir / f"{project}.db") as db:
        rows = db.execute(
            "select step, metrics from metrics where run_name = ? order by step", (run,)
        ).fetchall()
    return [{"step": step, **json.loads(metrics)} for step, metrics in rows]


def wandb_history(wandb_dir: Path, run_name: str | None = None) -> list[dict]:
    """History rows of the offline run(s) under ``wandb_dir/wandb`` (named ``run_name`` if given),
    decoded from the run's ``.wandb`` file: a LevelDB-style log of ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    rows: list[dict] = []
    for path in sorted((wandb_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        records = [wandb_internal_pb2.Record.FromString(data) for data in _log_records(path.read_bytes())]
        names = [r.run.display_name for r in records if r.WhichOneof("record_type") == "run"]
        if run_name is not None and run_name not in names:
            continue
        for record in records:
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows


def _log_records(data: bytes) -> list[bytes]:
    """Records of a LevelDB log file after W&B's 7-byte header (':W&B' + magic + version): 32 KiB
    blocks of chunks, each 7 bytes of header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    block, records, pending, offset = 32768, [], b"", 7
    while offset + 7 <= len(data):
        left = block - offset % block
        if left < 7:  # block trailer padding
            offset += left
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        chunk = data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
            pending = b""
    return records
