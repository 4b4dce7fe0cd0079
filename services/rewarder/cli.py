"""Command-line flags for the rewarder, one per setting, generated from the settings fields so the
help text is the field's documentation. A flag that is given wins over the environment (it becomes an
init kwarg); one that is not leaves the env/default in force."""

from __future__ import annotations

import argparse

from raftflow.server.entry import settings_from_flags
from services.rewarder.settings import RewarderSettings

FLAGS = (
    "model",
    "function",
    "host",
    "port",
    "format",
    "max_items",
    "max_text_chars",
    "max_length",
    "max_batch_size",
    "max_batch_tokens",
    "max_wait_ms",
    "vllm_url",
    "vllm_model_name",
    "calibration_file",
    "add_special_tokens",
    "dtype",
    "openrlhf_append_eos",
    "access_log",
    "device",
    "torch_threads",
    "trust_remote_code",
    "log_level",
)

# Shared fields whose description lives nowhere else.
HELP = {"log_level": "Log level: debug, info, warning or error (RAFTFLOW_LOG_LEVEL)."}


def flag_help(name: str) -> str:
    return RewarderSettings.model_fields[name].description or HELP[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.rewarder", description="Serve a reward model or reward function over HTTP."
    )
    for name in FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=flag_help(name))
    return parser


def parse_settings(argv: list[str] | None = None) -> RewarderSettings:
    return settings_from_flags(build_parser(), RewarderSettings, argv)
