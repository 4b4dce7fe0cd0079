"""hh has no end-of-turn token: without a stop at the next turn, a policy that has not learned to end on
EOS writes the user's next turn and its own reply, which were then scored and trained on. Samples in
hh stop at ``\\n\\nHuman:`` / ``\\n\\nAssistant:`` unless a run names its own stop strings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from raftflow.data import write_text2text, write_text_only
from raftflow.schemas.runs import RunRequest
from raftflow.stages import read_samples
from raftflow_cli.commands import main

NEXT_TURN = "\n\nHuman:"
REPLY = " Hello there.\n\nHuman: Tell me more.\n\nAssistant: Sure, here is more."


@pytest.fixture(scope="module")
def chatty_policy(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny policy fine-tuned (in hh) on replies that run on into an invented next turn."""
    out = tmp_path_factory.mktemp("chatty")
    data = out / "chatty.json"
    write_text2text(data, [(f"Say hello {i}", REPLY) for i in range(8)])
    args = ["train", "sft", "--local", "--model", str(tiny_models["policy"]), "--data", str(data)]
    args += ["--out", str(out), "--job-id", "chatty", "--max-steps", "60", "--lr", "3e-3"]
    args += ["--batch-size", "8", "--max-length", "64", "--prompt-format", "hh"]
    assert main(args) == 0
    return out / "chatty"


def sample(policy: Path, out: Path, *extra: str) -> list:
    prompts = out.parent / "prompts.json"
    write_text_only(prompts, ["Say hello 3"] * 4)
    args = ["sample", str(prompts), str(out), "--model", str(policy), "--prompt-format", "hh"]
    args += ["--k", "2", "--temperature", "0.2", "--max-new-tokens", "40", *extra]
    assert main(args) == 0
    return [s for row in read_samples(out) for s in row.samples]


def test_hh_samples_end_before_the_next_turn(chatty_policy: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chatty_policy)
    # Told not to stop, the policy writes the next turn: what every hh sample used to hold.
    run_on = sample(chatty_policy, tmp_path / "run_on.json", "--stop", "never said")
    assert all(NEXT_TURN in s.text for s in run_on), [s.text for s in run_on]

    samples = sample(chatty_policy, tmp_path / "samples.json")
    for s in samples:
        assert NEXT_TURN not in s.text and "\n\nAssistant:" not in s.text
        assert s.text.startswith(" Hello there")
        assert s.finish_reason == "stop"
        # The ids run through the stop string (what the policy sampled, and its KL is of); the text is cut.
        assert NEXT_TURN in tokenizer.decode(s.token_ids)


def test_a_run_may_name_its_own_stop_strings() -> None:
    assert RunRequest(policy="p", prompts="x").stop is None  # the format's default
    assert RunRequest(policy="p", prompts="x", stop=["\n\nUser:"]).sampling_params(0).stop == ["\n\nUser:"]
    assert RunRequest(policy="p", prompts="x", stop=[]).sampling_params(0).stop == []  # none at all
    for bad in ([""], ["a"] * 5, ["x" * 65]):
        with pytest.raises(ValidationError, match="stop"):
            RunRequest(policy="p", prompts="x", stop=bad)
