"""The client side: an unreachable broker is reported as the trainer being down, unknown jobs are
PENDING, and nothing that submits or hosts the worker's parent process imports torch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftflow.clients.errors import ComponentUnavailable
from raftflow.clients.trainer import TrainerClient
from raftflow.schemas.jobs import SFTJob
from raftflow.server import free_port
from raftflow_cli.commands import main
from tests.processes import REPO_ROOT


def test_unreachable_broker_raises_component_unavailable(tmp_path: Path) -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with TrainerClient(url, retry_seconds=1.0) as client:
        started = time.monotonic()
        with pytest.raises(ComponentUnavailable) as info:
            client.progress("any")
        assert 1.0 <= time.monotonic() - started < 15
        assert info.value.component == "trainer" and info.value.waited_s >= 1.0
        assert "secret" not in str(info.value)  # the password is masked
        with pytest.raises(ComponentUnavailable):
            client.submit(SFTJob(job_id="j", model="m", data="d", output_dir=str(tmp_path)))


def test_cli_reports_an_unreachable_broker(tiny_models, sft_data: Path, tmp_path: Path, capsys) -> None:
    args = ["train", "sft", "--model", str(tiny_models["policy"]), "--data", str(sft_data)]
    args += ["--out", str(tmp_path / "out"), "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]
    assert main([*args, "--retry-seconds", "0.5"]) == 1
    assert "trainer at redis://127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_job_is_pending(trainer_client: TrainerClient) -> None:
    progress = trainer_client.progress("never-submitted")
    assert (progress.state, progress.step, progress.total_steps, progress.error) == ("PENDING", 0, 0, None)


def test_client_cli_and_worker_parent_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import raftflow.clients.trainer, raftflow_cli.commands, services.trainer, services.trainer.tasks\n"
        "import services.trainer.__main__\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
