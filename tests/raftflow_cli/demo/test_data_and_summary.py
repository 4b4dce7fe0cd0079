"""The demo's datasets and its verdict, without the stack: determinism by seed, gold-labelled pairs
that really prefer the higher gold reward, held-out prompts kept apart from SFT, and targets judged
from the numbers (including the reward-hacking warning)."""

from __future__ import annotations

import json
from pathlib import Path

from raftflow.data import load_pairs, load_preferences, load_prompts
from raftflow_cli.demo.config import DemoConfig
from raftflow_cli.demo.data import build_demo_data, clean_fortune, gold_scores, split_prompt
from raftflow_cli.demo.report import Row, summarize
from raftflow_cli.demo.stack import sweep_temp_entries


def small(out: Path, seed: int):
    return build_demo_data(out, seed=seed, eval_prompts=16, raft_prompts=32, preference_pairs_count=64)


def test_same_seed_same_files_other_seed_other_split(tmp_path: Path) -> None:
    a, b, c = small(tmp_path / "a", 0), small(tmp_path / "b", 0), small(tmp_path / "c", 1)
    for name in ("sft", "preferences", "raft_prompts", "eval_prompts"):
        assert getattr(a, name).read_bytes() == getattr(b, name).read_bytes()
    assert a.eval_prompts.read_bytes() != c.eval_prompts.read_bytes()
    assert json.loads((tmp_path / "a" / "data_card.json").read_text())["preference_pairs"] == 64


def test_held_out_prompts_never_appear_in_sft(tmp_path: Path) -> None:
    data = small(tmp_path, 0)
    sft_texts = {p.prompt + p.response for p in load_pairs(data.sft)}
    held = load_pairs(data.raft_prompts) + load_pairs(data.eval_prompts)
    assert len(load_prompts(data.raft_prompts)) == 32
    assert not {p.prompt + p.response for p in held} & sft_texts


def test_pairs_prefer_the_higher_gold_reward_by_the_gap(tmp_path: Path) -> None:
    data = small(tmp_path, 0)
    pairs = load_preferences(data.preferences)
    assert len(pairs) == 64
    for pair in pairs:
        assert pair.prompt  # one prompt, two continuations
        good, bad = gold_scores([(pair.prompt, pair.chosen), (pair.prompt, pair.rejected)])
        assert good - bad >= 0.3


def test_cleaning_and_prompt_split() -> None:
    assert clean_fortune("Sweet April showers\n\t\t-- Thomas Tusser", 5, 120, 2) == "Sweet April showers"
    assert clean_fortune("THIS IS SHOUTING LOUDLY", 5, 120, 2) is None
    assert clean_fortune("Call 555 now for a great deal", 5, 120, 2) is None
    prompt, response = split_prompt("The best way to predict the future", 3)
    assert (prompt, response) == ("The best way", " to predict the future")


def row(iteration: int, gold: float, proxy: float, d2: float) -> Row:
    return Row(
        iteration=iteration,
        checkpoint=f"ckpt-{iteration}",
        proxy_reward=proxy,
        gold_reward=gold,
        gold_std=0.2,
        proxy_std=0.5,
        proxy_best_of_k=proxy + 1,
        gold_of_best=gold,
        gold_best_of_k=gold,
        distinct_1=0.5,
        distinct_2=d2,
        mean_length=16.0,
        perplexity=100.0,
    )


def test_summary_meets_targets_only_when_the_numbers_do() -> None:
    config = DemoConfig()
    rising = [row(i, 0.05 + 0.1 * i, 0.3 * i, 0.9) for i in range(5)]
    summary = summarize(rising, config, 0.75)
    assert summary.all_met and summary.rising_iterations == 4 and summary.gold_monotone
    assert abs(summary.gold_gain_std - 2.0) < 1e-9

    collapsed = [*rising[:-1], row(4, 0.45, 1.2, 0.7)]
    summary = summarize(collapsed, config, 0.75)
    assert not summary.all_met
    assert [t.met for t in summary.targets] == [True, True, False]
    assert "NOT met: diversity kept" in summary.lines[0]


def test_summary_flags_reward_hacking() -> None:
    hacked = [row(i, 0.05, 0.4 * i, 0.9) for i in range(4)]
    summary = summarize(hacked, DemoConfig(), 0.6)
    assert summary.hacking_suspected and not summary.all_met
    assert any("hacking" in line for line in summary.lines)


def test_sweep_removes_only_temp_entries_of_owned_dirs(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / ".job.tmp-abc").mkdir(parents=True)
    (tmp_path / "artifacts" / "runs").mkdir(parents=True)
    (tmp_path / "artifacts" / "runs" / ".metrics.json.x1.tmp").write_text("{")
    (tmp_path / "artifacts" / "runs" / "metrics.json").write_text("{}")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ".notes.tmp").write_text("the user's")  # not a directory the run owns
    removed = sweep_temp_entries(tmp_path)
    assert sorted(p.name for p in removed) == [".job.tmp-abc", ".metrics.json.x1.tmp"]
    assert (tmp_path / "artifacts" / "runs" / "metrics.json").exists()
    assert (tmp_path / "elsewhere" / ".notes.tmp").exists()
