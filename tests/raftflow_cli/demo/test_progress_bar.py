"""The demo's training bar draws each progress report once, however often the client polls."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.schemas.jobs import JobProgress, JobResult, SFTJob
from raftflow_cli.demo.config import fast_profile
from raftflow_cli.demo.pipeline import DemoPipeline


class PollingTrainer:
    """Polls three times per report, as the real client (0.5 s) does against a worker reporting every
    ~1.5 s."""

    def submit(self, job: SFTJob) -> None: ...

    def wait(self, job_id: str, poll_interval: float, on_progress) -> JobResult:
        for step in (1, 2, 3):
            for _ in range(3):
                on_progress(JobProgress(job_id=job_id, state="PROGRESS", step=step, total_steps=3, loss=1.0))
        return JobResult(job_id=job_id, kind="sft", checkpoint="ckpt")


class AliveWorker:
    def alive(self) -> bool:
        return True


def test_each_report_is_drawn_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = SFTJob(job_id="j", model="m", data="d", output_dir=str(tmp_path))
    DemoPipeline(fast_profile(), tmp_path).train(PollingTrainer(), job, "SFT", AliveWorker())
    drawn = capsys.readouterr().err.count("\r")
    # tqdm's opening draw, one per distinct report, and its closing draw.
    assert drawn == 1 + 3 + 1
