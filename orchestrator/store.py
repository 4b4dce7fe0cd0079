"""Reads and writes of run state. Every state change is one short transaction, so a kill -9 at any
moment leaves the store at the last completed step."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from orchestrator.db import IterationRow, RunRow, utcnow
from raftflow.schemas.runs import AwaitingCheckpoint, IterationView, RunRequest, RunView, StageProgress

# Rough share of an iteration's wall time per stage, for the whole-run percentage.
_STAGE_WEIGHTS = {
    "sample": 0.35,
    "score": 0.08,
    "gold_score": 0.02,
    "select": 0.02,
    "train": 0.45,
    "load": 0.03,
    "eval": 0.05,
}
_STAGE_ORDER = list(_STAGE_WEIGHTS)
ACTIVE_STATUSES = ("queued", "running", "awaiting_checkpoint")


class RunStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(self, request: RunRequest) -> RunRow:
        row = RunRow(
            id=uuid.uuid4().hex[:16],
            status="queued",
            request=request.model_dump(mode="json"),
            policy=request.policy,
            current_iteration=0,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return row

    def get(self, run_id: str) -> RunRow | None:
        with self._sessions() as session:
            return session.scalar(
                select(RunRow).where(RunRow.id == run_id).options(selectinload(RunRow.iterations))
            )

    def list(self, limit: int = 100, offset: int = 0) -> list[RunRow]:
        with self._sessions() as session:
            query = (
                select(RunRow)
                .options(selectinload(RunRow.iterations))
                .order_by(RunRow.created_at.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(session.scalars(query))

    def active_run_ids(self) -> list[str]:
        """Runs a restarted orchestrator must pick up again, oldest first."""
        with self._sessions() as session:
            query = select(RunRow.id).where(RunRow.status.in_(ACTIVE_STATUSES)).order_by(RunRow.created_at)
            return list(session.scalars(query))

    def status(self, run_id: str) -> str | None:
        with self._sessions() as session:
            return session.scalar(select(RunRow.status).where(RunRow.id == run_id))

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        with self._sessions.begin() as session:
            row = session.get(RunRow, run_id)
            row.status = status
            row.error = error
            if status in ("succeeded", "failed", "cancelled"):
                row.progress = None

    def cancel(self, run_id: str) -> bool:
        """Mark cancelled unless already finished; returns whether the run was active."""
        with self._sessions.begin() as session:
            row = session.get(RunRow, run_id)
            if row is None or row.status not in ACTIVE_STATUSES:
                return False
            row.status = "cancelled"
            row.progress = None
            return True

    def set_awaiting(self, run_id: str, iteration: int, selected_data: str | None) -> None:
        """``awaiting_checkpoint`` (``selected_data``: what to train on) or back to ``running`` (None).
        A run cancelled in between stays cancelled."""
        with self._sessions.begin() as session:
            row = session.get(RunRow, run_id)
            if row.status not in ACTIVE_STATUSES:
                return
            row.current_iteration = iteration
            row.stage = "train"
            if selected_data is None:
                row.status = "running"
                row.progress = StageProgress(stage="train", unit="steps").model_dump(mode="json")
            else:
                row.status = "awaiting_checkpoint"
                progress = StageProgress(
                    stage="train",
                    unit="steps",
                    detail={"state": "awaiting_checkpoint", "selected_data": selected_data},
                )
                row.progress = progress.model_dump(mode="json")

    def set_stage(self, run_id: str, iteration: int, stage: str, progress: StageProgress | None) -> None:
        with self._sessions.begin() as session:
            row = session.get(RunRow, run_id)
            row.current_iteration = iteration
            row.stage = stage
            row.progress = progress.model_dump(mode="json") if progress else None

    def start_iteration(self, run_id: str, index: int) -> None:
        with self._sessions.begin() as session:
            exists = session.scalar(
                select(IterationRow).where(IterationRow.run_id == run_id, IterationRow.index == index)
            )
            if exists is None:
                session.add(IterationRow(run_id=run_id, index=index, stage="sample", started_at=utcnow()))

    def finish_iteration(self, run_id: str, index: int, checkpoint: str, metrics: dict[str, float]) -> None:
        """Record the iteration AND advance the run's policy in one transaction: either both happen or
        neither, so a restart never trains the same iteration twice or skips one."""
        with self._sessions.begin() as session:
            iteration = session.scalar(
                select(IterationRow).where(IterationRow.run_id == run_id, IterationRow.index == index)
            )
            iteration.stage = "done"
            iteration.checkpoint = checkpoint
            iteration.metrics = metrics
            iteration.finished_at = utcnow()
            run = session.get(RunRow, run_id)
            run.policy = checkpoint
            run.current_iteration = index + 1
            run.stage = None
            run.progress = None


def to_view(row: RunRow, base_url: str) -> RunView:
    request = RunRequest.model_validate(row.request)
    done = [it for it in row.iterations if it.stage == "done"]
    progress = StageProgress.model_validate(row.progress) if row.progress else None
    return RunView(
        id=row.id,
        url=f"{base_url.rstrip('/')}/iterations/{row.id}",
        status=row.status,
        request=request,
        current_iteration=row.current_iteration,
        stage=row.stage,
        progress=progress,
        percent_complete=_percent(row.status, len(done), request.num_iterations, progress),
        policy=row.policy,
        awaiting_checkpoint=_awaiting(row, base_url, progress),
        iterations=[
            IterationView(
                index=it.index,
                stage=it.stage,
                checkpoint=it.checkpoint,
                metrics=it.metrics or {},
                started_at=_aware(it.started_at),
                finished_at=_aware(it.finished_at),
            )
            for it in row.iterations
        ],
        error=row.error,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def _awaiting(row: RunRow, base_url: str, progress: StageProgress | None) -> AwaitingCheckpoint | None:
    if row.status != "awaiting_checkpoint" or progress is None:
        return None
    return AwaitingCheckpoint(
        iteration=row.current_iteration,
        selected_data=str(progress.detail.get("selected_data")),
        submit_to=f"{base_url.rstrip('/')}/iterations/{row.id}/checkpoint",
    )


def _percent(status: str, done: int, total: int, progress: StageProgress | None) -> float:
    if status == "succeeded":
        return 100.0
    within = 0.0
    if progress is not None and progress.stage in _STAGE_WEIGHTS:
        before = _STAGE_ORDER[: _STAGE_ORDER.index(progress.stage)]
        within = sum(_STAGE_WEIGHTS[s] for s in before) + _STAGE_WEIGHTS[progress.stage] * progress.fraction
    return round(100.0 * min(1.0, (done + within) / total), 2)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite drops the timezone on the way back; every stored time is UTC."""
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
