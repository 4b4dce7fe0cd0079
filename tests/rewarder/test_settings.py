"""Settings come from REWARDER_* env vars; command-line flags override them."""

from __future__ import annotations

import pytest

from services.rewarder.cli import FLAGS, build_parser, flag_help, parse_settings
from services.rewarder.settings import RewarderSettings
from tests.processes import REPO_ROOT


def test_env_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REWARDER_MODEL", "some/model")
    monkeypatch.setenv("REWARDER_MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("REWARDER_FORMAT", "hh")
    monkeypatch.setenv("RAFTFLOW_DEVICE", "cpu")
    settings = RewarderSettings()
    assert (settings.model, settings.max_batch_size, settings.format, settings.device) == (
        "some/model",
        7,
        "hh",
        "cpu",
    )
    assert (settings.port, settings.max_items, settings.max_wait_ms) == (8002, 1024, 5.0)


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REWARDER_MODEL", "env/model")
    monkeypatch.setenv("REWARDER_MAX_WAIT_MS", "50")
    monkeypatch.setenv("REWARDER_PORT", "9000")
    settings = parse_settings(["--model", "flag/model", "--max-wait-ms", "0", "--device", "cpu"])
    assert (settings.model, settings.max_wait_ms, settings.port, settings.device) == (
        "flag/model",
        0.0,
        9000,
        "cpu",
    )


def test_exactly_one_reward_source(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("REWARDER_MODEL", raising=False)
    monkeypatch.delenv("REWARDER_FUNCTION", raising=False)
    with pytest.raises(ValueError, match="exactly one of model"):
        RewarderSettings()
    with pytest.raises(ValueError, match="exactly one of model"):
        RewarderSettings(model="m", function="pkg.mod:fn")


def test_a_bad_flag_value_exits_with_the_reason(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        parse_settings(["--function", "pkg:fn", "--max-batch-size", "0"])
    assert "max_batch_size" in capsys.readouterr().err


def test_every_flag_is_a_documented_setting():
    help_text = build_parser().format_help()
    for name in FLAGS:
        assert f"--{name.replace('_', '-')}" in help_text
        assert flag_help(name)


def test_every_setting_is_in_the_docs():
    docs = (REPO_ROOT / "docs" / "rewarder.md").read_text()
    for name, field in RewarderSettings.model_fields.items():
        alias = field.validation_alias
        env = alias if isinstance(alias, str) else f"REWARDER_{name.upper()}"
        assert f"`{env}`" in docs, f"{env} is not documented in docs/rewarder.md"
