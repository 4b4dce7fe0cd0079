"""A rewarder that cannot serve what it was asked to ends at start-up and says why, instead of
answering requests with errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.rewarder.routes.openrlhf import with_single_eos
from tests.processes import start_service


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
    with pytest.raises(RuntimeError, match="exited during start-up") as caught:
        start_service("services.rewarder", *args, log_dir=tmp_path, timeout=60)
    assert reason in str(caught.value)


def test_openrlhf_query_cleanup_leaves_exactly_one_eos():
    assert with_single_eos("<e><p>text<p><e><e>", "<e>", "<p>") == "text<e>"
    assert with_single_eos("plain", "<e>", None) == "plain<e>"
