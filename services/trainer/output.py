"""A job's checkpoint directory: staged in a temp dir, published by one rename, marked complete.

``output_dir/job_id`` either does not exist or holds a finished checkpoint with the completion marker
(the :class:`JobResult`), written before the rename. A worker killed mid-job leaves only a hidden
``.JOB_ID.tmp-*`` dir, which nothing reads and the next run of the same job deletes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from raftflow.atomic import write_json_atomic
from raftflow.schemas.jobs import COMPLETION_MARKER, JobResult, TrainingJob

log = logging.getLogger(__name__)


class OutputConflict(RuntimeError):
    """The job's output path holds something that is not a finished raftflow checkpoint."""


class JobOutput:
    def __init__(self, job: TrainingJob) -> None:
        self.job_id = job.job_id
        self.final = job.checkpoint_path
        self.parent = self.final.parent

    def stored_result(self) -> JobResult | None:
        """The result of an earlier complete run of this job, or None when it has not finished."""
        marker = self.final / COMPLETION_MARKER
        if marker.is_file():
            return JobResult.model_validate_json(marker.read_text(encoding="utf-8"))
        if self.final.exists():
            raise OutputConflict(
                f"{self.final} exists but has no {COMPLETION_MARKER}: it is not a finished raftflow job. "
                "Remove it or use another job_id."
            )
        return None

    def remove_stale(self) -> None:
        """Delete temp dirs that earlier, interrupted runs of this job left behind."""
        for stale in self.parent.glob(f".{self.job_id}.tmp-*"):
            log.warning("removing %s left by an interrupted run of job %s", stale, self.job_id)
            shutil.rmtree(stale, ignore_errors=True)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh temp dir beside the final path (same filesystem, so the rename is atomic); removed
        if the body raises."""
        self.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.job_id}.tmp-", dir=self.parent))
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the generator may run as another user
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def commit(self, staged: Path, result: JobResult) -> JobResult:
        """Write the marker into ``staged`` and rename it into place. If another run of the same job
        won the race, its result stands and ``staged`` is discarded."""
        for file in staged.iterdir():  # safetensors writes 0600; consumers may run as another user
            if file.is_file():
                file.chmod(0o644)
        write_json_atomic(staged / COMPLETION_MARKER, result.model_dump(mode="json"))
        try:
            os.rename(staged, self.final)
        except OSError:
            existing = self.stored_result()
            if existing is None:
                raise
            shutil.rmtree(staged, ignore_errors=True)
            return existing
        _fsync_dir(self.parent)
        return result


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (a crash right after could otherwise lose the new entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
