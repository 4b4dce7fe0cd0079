"""The checkpoint directory protocol: staged, renamed into place with its marker, never half-visible."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.schemas.jobs import COMPLETION_MARKER, JobResult, SFTJob
from services.trainer.output import JobOutput, OutputConflict


def make(tmp_path: Path, job_id: str = "job-1") -> JobOutput:
    return JobOutput(SFTJob(job_id=job_id, model="m", data="d", output_dir=str(tmp_path / "out")))


def result_for(output: JobOutput, loss: float = 1.0) -> JobResult:
    return JobResult(
        job_id=output.job_id, kind="sft", checkpoint=str(output.final), metrics={"train_loss": loss}
    )


def test_commit_publishes_the_whole_directory_with_its_marker(tmp_path: Path) -> None:
    output = make(tmp_path)
    assert output.stored_result() is None
    with output.staging() as staged:
        assert staged.parent == output.final.parent and staged.name.startswith(".job-1.tmp-")
        (staged / "model.safetensors").write_bytes(b"weights")
        assert not output.final.exists()
        published = output.commit(staged, result_for(output))
    assert sorted(p.name for p in output.final.iterdir()) == sorted([COMPLETION_MARKER, "model.safetensors"])
    assert output.stored_result() == published == result_for(output)
    assert [p.name for p in output.parent.iterdir()] == ["job-1"]


def test_a_failed_run_leaves_nothing_and_stale_temp_dirs_are_removed(tmp_path: Path) -> None:
    output = make(tmp_path)
    with pytest.raises(RuntimeError), output.staging() as staged:
        (staged / "half").write_bytes(b"x")
        raise RuntimeError("training crashed")
    assert list(output.parent.iterdir()) == []

    # What a SIGKILL leaves behind: a temp dir of this job, plus one of another job that must survive.
    (output.parent / ".job-1.tmp-dead").mkdir()
    (output.parent / ".job-10.tmp-other").mkdir()
    output.remove_stale()
    assert [p.name for p in output.parent.iterdir()] == [".job-10.tmp-other"]
    assert output.stored_result() is None


def test_a_foreign_directory_is_never_taken_for_a_result(tmp_path: Path) -> None:
    output = make(tmp_path)
    output.final.mkdir(parents=True)
    (output.final / "model.safetensors").write_bytes(b"not ours")
    with pytest.raises(OutputConflict, match="not a finished raftflow job"):
        output.stored_result()


def test_the_first_finished_run_wins_a_race(tmp_path: Path) -> None:
    output = make(tmp_path)
    with output.staging() as first, output.staging() as second:
        winner = output.commit(first, result_for(output, loss=1.0))
        assert output.commit(second, result_for(output, loss=2.0)) == winner
    assert output.stored_result() == winner
    assert [p.name for p in output.parent.iterdir()] == ["job-1"]
