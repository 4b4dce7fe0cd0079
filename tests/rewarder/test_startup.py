"""A rewarder that cannot serve what it was asked to ends at start-up and says why, instead of
answering requests with errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.processes import ServiceProcess, python_module
from raftflow.server import free_port
from services.rewarder.routes.openrlhf import with_single_eos
from tests.rewarder.conftest import REPO_ROOT


def start(tmp_path: Path, *args: str) -> ServiceProcess:
    port = free_port()
    return ServiceProcess(
        name="services.rewarder",
        args=python_module("services.rewarder", "--port", str(port), *args),
        log_path=tmp_path / "rewarder.log",
        cwd=REPO_ROOT,
        health_url=f"http://127.0.0.1:{port}/health",
    ).start()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--function", "no_such_module:fn"), "No module named 'no_such_module'"),
        (("--function", "raftflow.rewards.sentiment"), "must look like 'package.module:function'"),
        (("--function", "raftflow.rewards.sentiment:vader_positivity", "--format", "chat_template"),
         "format 'chat_template' needs a tokenizer with a chat_template"),
        ((), "give exactly one of model"),
    ],
)  # fmt: skip
def test_a_bad_configuration_ends_the_process_with_the_reason(
    tmp_path: Path, args: tuple[str, ...], reason: str
):
    process = start(tmp_path, *args)
    try:
        with pytest.raises(RuntimeError, match="exited during start-up") as caught:
            process.wait_healthy(timeout=60)
        assert reason in str(caught.value)
    finally:
        process.stop()


def test_openrlhf_query_cleanup_leaves_exactly_one_eos():
    assert with_single_eos("<e><p>text<p><e><e>", "<e>", "<p>") == "text<e>"
    assert with_single_eos("plain", "<e>", None) == "plain<e>"
