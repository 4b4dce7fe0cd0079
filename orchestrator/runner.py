"""Executes runs one at a time in a background thread, and picks unfinished runs up again on start.

One run at a time on purpose: runs share one generator, and each iteration loads its own checkpoint
into it; two interleaved runs would sample from each other's policies. Later runs wait as ``queued``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from contextlib import AsyncExitStack

from orchestrator.backends import open_backends
from orchestrator.failures import describe_failure
from orchestrator.raft_loop import RunCancelled, RunContext, RunInterrupted, execute_run
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import ACTIVE_STATUSES, RunStore
from orchestrator.telemetry import Telemetry
from orchestrator.trackers import RunTrackers
from raftflow.schemas.runs import RunRequest, StageProgress

log = logging.getLogger(__name__)


class StoreReporter:
    """The loop's Reporter, writing to the run store (and Prometheus)."""

    def __init__(
        self, store: RunStore, run_id: str, telemetry: Telemetry, trackers: RunTrackers | None = None
    ) -> None:
        self.store, self.run_id, self.telemetry = store, run_id, telemetry
        self.trackers = trackers

    def stage(self, iteration: int, progress: StageProgress) -> None:
        self.store.set_stage(self.run_id, iteration, progress.stage, progress)

    def iteration_started(self, iteration: int) -> None:
        self.store.start_iteration(self.run_id, iteration)

    def awaiting_checkpoint(self, iteration: int, selected_data: str | None) -> None:
        self.store.set_awaiting(self.run_id, iteration, selected_data)

    def iteration_finished(self, iteration: int, checkpoint: str, metrics: dict[str, float]) -> None:
        self.store.finish_iteration(self.run_id, iteration, checkpoint, metrics)
        self.telemetry.iterations.inc()
        if self.trackers is not None:
            self.trackers.log(iteration, metrics)
        for stage in ("sample", "score", "train", "load", "eval"):
            if f"{stage}_s" in metrics:
                self.telemetry.stage_seconds.labels(stage).observe(metrics[f"{stage}_s"])


class RunManager:
    def __init__(self, settings: OrchestratorSettings, store: RunStore, telemetry: Telemetry) -> None:
        self.settings, self.store, self.telemetry = settings, store, telemetry
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._shutdown = threading.Event()
        self._thread = threading.Thread(target=self._work, name="raft-runs", daemon=True)

    def start(self) -> None:
        for run_id in self.store.active_run_ids():
            log.info("resuming run %s", run_id)
            self._queue.put(run_id)
        self._thread.start()

    def submit(self, run_id: str) -> None:
        self.telemetry.runs.labels("submitted").inc()
        self._queue.put(run_id)

    def cancel(self, run_id: str) -> bool:
        cancelled = self.store.cancel(run_id)
        event = self._cancel.get(run_id)
        if event is not None:
            event.set()
        return cancelled

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupt the current run at its next check; it stays ``running`` and resumes on restart."""
        self._shutdown.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while not self._shutdown.is_set():
            run_id = self._queue.get()
            if run_id is None:
                return
            self._execute(run_id)

    def _execute(self, run_id: str) -> None:
        row = self.store.get(run_id)
        if row is None or row.status not in ACTIVE_STATUSES:
            return
        request = RunRequest.model_validate(row.request)
        cancel = self._cancel.setdefault(run_id, threading.Event())
        trackers = RunTrackers(
            self.settings.artifacts_dir / "tracking",
            run_id,
            request.report_to or [],
            request.model_dump(mode="json"),
        )
        outcome = "interrupted"
        ctx = RunContext(
            run_id=run_id,
            request=request,
            run_dir=self.settings.run_dir(run_id),
            reporter=StoreReporter(self.store, run_id, self.telemetry, trackers),
            cancel=cancel,
            shutdown=self._shutdown,
            sample_chunk_prompts=self.settings.sample_chunk_prompts,
            score_chunk_items=self.settings.score_chunk_items,
            overlap_scoring=self.settings.overlap_scoring,
        )
        if row.status != "awaiting_checkpoint":  # a restarted wait stays open: no window refusing posts
            self.store.set_status(run_id, "running")
        try:
            asyncio.run(self._run(ctx, row.current_iteration, row.policy))
        except RunCancelled:
            log.info("run %s cancelled", run_id)
            self.telemetry.runs.labels("cancelled").inc()
            outcome = "cancelled"
        except RunInterrupted:
            log.info("run %s interrupted by shutdown; it resumes on the next start", run_id)
        except Exception as exc:  # the run fails, the orchestrator lives on
            log.exception("run %s failed", run_id)
            self.store.set_status(run_id, "failed", error=describe_failure(run_id, exc))
            self.telemetry.runs.labels("failed").inc()
            outcome = "failed"
        else:
            if self.store.status(run_id) == "running":
                self.store.set_status(run_id, "succeeded")
                self.telemetry.runs.labels("succeeded").inc()
                outcome = "succeeded"
        finally:
            self._cancel.pop(run_id, None)
            trackers.finish(outcome)  # an interrupted run's tracker runs are resumed on restart

    async def _run(self, ctx: RunContext, start_iteration: int, policy: str) -> None:
        async with AsyncExitStack() as stack:
            backends = await open_backends(self.settings, ctx.request, stack)
            await execute_run(ctx, backends, start_iteration, policy)
