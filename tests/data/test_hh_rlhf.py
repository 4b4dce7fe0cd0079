"""HH-RLHF: dialogue splitting and the converter, on a hand-made file and on the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftflow.data import (
    PreferencePair,
    PromptResponse,
    load_pairs,
    load_preferences,
    load_prompts,
    split_dialogue,
)
from raftflow_cli.commands import main

from .conftest import HH_SAMPLE, write_jsonl


def dialogue(*turns: str) -> str:
    """HH layout: alternating Human / Assistant turns, each introduced by a blank line."""
    roles = ["Human", "Assistant"]
    return "".join(f"\n\n{roles[i % 2]}: {text}" for i, text in enumerate(turns))


def test_split_dialogue_keeps_history_and_strips_the_leading_space() -> None:
    text = dialogue("Hi", "Hello! How can I help?", "Tell me a joke", "Why did the chicken cross the road?")
    assert split_dialogue(text) == PromptResponse(
        "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke\n\nAssistant:",
        "Why did the chicken cross the road?",
    )
    with pytest.raises(ValueError):
        split_dialogue("\n\nHuman: no reply yet")


def test_converter_writes_three_sets_and_counts_drops(tmp_path: Path, capsys) -> None:
    good = {"chosen": dialogue("Hi", "Hello!"), "rejected": dialogue("Hi", "Go away.")}
    same_prompt = {"chosen": dialogue("Hi", "Hey there."), "rejected": dialogue("Hi", "What?")}
    tie = {"chosen": dialogue("Weather?", "Sunny."), "rejected": dialogue("Weather?", "Sunny.")}
    rows = [
        good,
        same_prompt,
        tie,
        {"chosen": dialogue("A", "B")},  # no rejected
        {"chosen": "\n\nHuman: only a question", "rejected": "\n\nHuman: only a question"},
        {"chosen": dialogue("X", ""), "rejected": dialogue("X", "Y")},  # empty chosen reply
        {"chosen": dialogue("P1", "R"), "rejected": dialogue("P2", "R")},  # prompts differ
    ]
    source = write_jsonl(tmp_path / "hh.jsonl.gz", rows, compress=True)
    out = tmp_path / "out"
    assert main(["data", "hh-rlhf", str(source), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "records read: 7" in printed
    assert "malformed (dropped): 4" in printed
    assert "sft.json: 3" in printed and "reward_pairs.jsonl: 2 (identical pairs dropped: 1)" in printed
    assert "prompts.json: 2 (duplicates dropped: 1)" in printed

    hi = "\n\nHuman: Hi\n\nAssistant:"
    assert load_pairs(out / "sft.json") == [
        PromptResponse(hi, "Hello!"),
        PromptResponse(hi, "Hey there."),
        PromptResponse("\n\nHuman: Weather?\n\nAssistant:", "Sunny."),
    ]
    # The dialogues are stored whole (HH's layout) and read back split at the last reply, so the
    # reward-model job can render them in its own prompt format.
    assert load_preferences(out / "reward_pairs.jsonl") == [
        PreferencePair("Hello!", "Go away.", hi),
        PreferencePair("Hey there.", "What?", hi),
    ]
    assert json.loads((out / "reward_pairs.jsonl").read_text().splitlines()[0]) == good
    assert load_prompts(out / "prompts.json") == [hi, "\n\nHuman: Weather?\n\nAssistant:"]
    assert json.loads((out / "prompts.json").read_text())["type"] == "text_only"


def test_converter_rejects_unusable_input_and_writes_nothing(tmp_path: Path, capsys) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", [{"chosen": "no assistant", "rejected": "x"}])
    assert main(["data", "hh-rlhf", str(source), str(tmp_path / "out")]) == 2
    assert "no usable HH-RLHF records (1 malformed)" in capsys.readouterr().err
    assert main(["data", "hh-rlhf", str(tmp_path / "absent.jsonl"), str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not HH_SAMPLE.exists(), reason=f"HH-RLHF sample not present at {HH_SAMPLE}")
def test_converter_on_the_real_sample(tmp_path: Path, capsys) -> None:
    assert main(["data", "hh-rlhf", str(HH_SAMPLE), str(tmp_path)]) == 0
    assert "records read: 1500" in capsys.readouterr().out
    sft = load_pairs(tmp_path / "sft.json")
    pairs = load_preferences(tmp_path / "reward_pairs.jsonl")
    prompts = load_prompts(tmp_path / "prompts.json")
    assert 1400 <= len(sft) <= 1500 and 1400 <= len(pairs) <= len(sft) and len(prompts) <= len(sft)
    for example in sft:
        assert example.prompt.startswith("\n\nHuman:") and example.prompt.endswith("\n\nAssistant:")
        assert example.response and not example.response.startswith(" ")
        assert "\n\nAssistant:" not in example.response
    # Every SFT example is its pair's chosen dialogue, cut in two.
    chosen = {(pair.prompt, pair.chosen) for pair in pairs}
    assert sum((example.prompt, example.response) in chosen for example in sft) >= len(pairs)
    assert sum(pair.prompt is not None for pair in pairs) >= 0.99 * len(pairs)


def test_check_command(tmp_path: Path, capsys) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    assert main(["data", "check", str(path), "--as", "prompts"]) == 0
    assert "2 prompts records" in capsys.readouterr().out
    assert main(["data", "check", str(path), "--as", "pairs"]) == 2
    assert "missing field 'response'" in capsys.readouterr().err
