"""Settings: GENERATOR_* env vars, command-line flags win, bad combinations stop the start."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.generator.cli import parse_settings
from tests.generator.conftest import start_generator


def test_flags_override_env_and_env_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENERATOR_MODEL", "env-model")
    monkeypatch.setenv("GENERATOR_MAX_N", "5")
    monkeypatch.setenv("GENERATOR_TOKEN_BUDGET", "777")
    monkeypatch.setenv("RAFTFLOW_TORCH_THREADS", "2")
    settings = parse_settings(["--model", "flag-model", "--max-n", "3"])
    assert settings.model == "flag-model"
    assert settings.max_n == 3
    assert settings.token_budget == 777
    assert settings.torch_threads == 2
    assert settings.port == 8001 and settings.backend == "transformers"


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        ([], "needs a model"),
        (["--backend", "tgi"], "needs --tgi-url"),
        (["--model", "m", "--max-n", "0"], "max_n"),
    ],
)
def test_invalid_settings_exit_with_the_reason(
    argv: list[str], reason: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GENERATOR_MODEL", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(argv)
    assert exit_info.value.code == 2
    assert reason in capsys.readouterr().err


def test_a_model_that_does_not_load_stops_the_start_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(RuntimeError, match="exited during start-up") as failed:
        start_generator(tmp_path, "--model", str(missing))
    assert str(missing) in str(failed.value)
