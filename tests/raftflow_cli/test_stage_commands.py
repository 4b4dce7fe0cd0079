"""``raftflow sample | score | select`` and ``train sft --local`` on the tiny models: LMFlow-RAFT's
three-stage recipe by hand, each file's contents checked against what it must hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from raftflow.data import load_pairs, load_preferences
from raftflow.rewards.sentiment import vader_positivity
from raftflow.schemas.reward import RewardItem
from raftflow.selection import degenerate_reason
from raftflow.stages import read_samples, read_scores
from raftflow_cli.commands import main

PROMPTS = ["The quick brown", "A good day", "Life is", "Never trust a", "All the world"]
VADER = "raftflow.rewards.sentiment:vader_positivity"


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"type": "text_only", "instances": [{"text": p} for p in PROMPTS]}))
    return path


def sample_cli(prompts: Path, out: Path, source: list[str], *extra: str) -> int:
    args = ["sample", str(prompts), str(out), *source, "--k", "4", "--max-new-tokens", "12"]
    return main([*args, "--prompt-format", "raw", "--chunk-prompts", "2", *extra])


def test_three_stages_then_sft(tiny_models: dict[str, Path], prompts_file: Path, tmp_path: Path) -> None:
    policy = ["--model", str(tiny_models["policy"])]

    # 1. sample: one record per prompt, in order, K samples each, within the token limit; reproducible
    #    by seed, and --iteration seeds the chunks as that iteration of a run would.
    assert sample_cli(prompts_file, tmp_path / "samples.json", policy, "--seed", "5") == 0
    sampled = read_samples(tmp_path / "samples.json")
    assert [row.prompt for row in sampled] == PROMPTS
    assert all(len(row.samples) == 4 for row in sampled)
    assert all(1 <= s.completion_tokens <= 12 and s.finish_reason in ("stop", "length")
               for row in sampled for s in row.samples)  # fmt: skip
    assert sample_cli(prompts_file, tmp_path / "again.json", policy, "--seed", "5") == 0
    assert (tmp_path / "again.json").read_text() == (tmp_path / "samples.json").read_text()
    assert sample_cli(prompts_file, tmp_path / "iter1.json", policy, "--seed", "5", "--iteration", "1") == 0
    assert (tmp_path / "iter1.json").read_text() != (tmp_path / "samples.json").read_text()

    # 2. score with a module:function reward: exactly the function's values on each (prompt, response).
    assert (
        main(["score", str(tmp_path / "samples.json"), str(tmp_path / "scores.json"), "--function", VADER])
        == 0
    )
    scored = read_scores(tmp_path / "scores.json")
    for row in scored:
        items = [
            RewardItem(text=row.prompt + s.text, prompt=row.prompt, response=s.text) for s in row.samples
        ]
        assert row.rewards == pytest.approx(vader_positivity(items), abs=1e-9)
        assert [s.text for s in row.samples] == [s.text for s in sampled[PROMPTS.index(row.prompt)].samples]

    # 3. select: the best valid sample of each prompt, as LMFlow text2text.
    assert main(["select", str(tmp_path / "scores.json"), str(tmp_path / "selected.json")]) == 0
    selected = load_pairs(tmp_path / "selected.json")
    expected = []
    for row in scored:
        valid = [j for j, s in enumerate(row.samples) if degenerate_reason(s.text) is None]
        if valid:
            best = max(valid, key=lambda j: (row.rewards[j], -j))
            expected.append((row.prompt, row.samples[best].text))
    assert [(p.prompt, p.response) for p in selected] == expected
    assert json.loads((tmp_path / "selected.json").read_text())["type"] == "text2text"

    # 4. the file trains unchanged: `raftflow train sft --local` reads it and writes a checkpoint.
    code = main([
        "train", "sft", "--local", "--model", str(tiny_models["policy"]),
        "--data", str(tmp_path / "selected.json"), "--out", str(tmp_path / "ckpt"), "--job-id", "by-hand",
        "--max-steps", "2", "--batch-size", "2", "--prompt-format", "raw",
    ])  # fmt: skip
    assert code == 0
    assert (tmp_path / "ckpt" / "by-hand" / "model.safetensors").exists()


def test_select_filters(tmp_path: Path) -> None:
    """Threshold and margin drop whole prompts; global selection keeps the top fraction overall."""
    rows = [
        {"prompt": "p0", "rewards": [0.1, 0.9, 0.2, 0.3]},  # best 0.9, median 0.25: margin 0.65
        {"prompt": "p1", "rewards": [0.5, 0.55, 0.45, 0.5]},  # best 0.55, margin 0.05
        {"prompt": "p2", "rewards": [-1.0, -0.8, -0.9, -0.95]},  # best -0.8: below a 0 threshold
    ]
    records = [
        {"prompt": r["prompt"], "rewards": r["rewards"],
         "samples": [{"text": f"answer {i} to {r['prompt']}", "finish_reason": "stop", "completion_tokens": 4}
                     for i in range(4)]}
        for r in rows
    ]  # fmt: skip
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(records))

    def kept(*flags: str) -> list[tuple[str, str]]:
        assert main(["select", str(scores), str(tmp_path / "out.json"), *flags]) == 0
        return [(p.prompt, p.response) for p in load_pairs(tmp_path / "out.json")]

    assert kept() == [("p0", "answer 1 to p0"), ("p1", "answer 1 to p1"), ("p2", "answer 1 to p2")]
    assert kept("--min-reward", "0") == [("p0", "answer 1 to p0"), ("p1", "answer 1 to p1")]
    assert kept("--min-margin", "0.1") == [("p0", "answer 1 to p0"), ("p2", "answer 1 to p2")]
    # global: 3 of 12 samples by default (1/K), the top three overall are 0.9, 0.55, 0.5 (first of the ties)
    assert kept("--selection", "global") == [("p0", "answer 1 to p0"), ("p1", "answer 0 to p1"),
                                             ("p1", "answer 1 to p1")]  # fmt: skip
    assert main(["select", str(scores), str(tmp_path / "x.json"), "--min-reward", "5"]) == 2
    assert not (tmp_path / "x.json").exists()


def test_bad_input_exits_2_and_writes_nothing(
    tiny_models: dict[str, Path], prompts_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "never.json"
    policy = ["--model", str(tiny_models["policy"])]
    assert (
        main(["sample", str(prompts_file), str(out), *policy, "--k", "2", "--top-reward-percentage", "0.5"])
        == 2
    )
    assert "either k or top_reward_percentage" in capsys.readouterr().err
    assert (
        main(
            ["sample", str(prompts_file), str(out), *policy, "--min-new-tokens", "9", "--max-new-tokens", "4"]
        )
        == 2
    )
    assert "min_new_tokens (9) must be <= max_new_tokens (4)" in capsys.readouterr().err
    assert main(["sample", str(prompts_file), str(out), *policy, "--temperature", "0"]) == 2
    assert "--temperature: Input should be greater than 0" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing.json"), str(out), *policy]) == 2
    (tmp_path / "bad.json").write_text(json.dumps([{"prompt": "p", "samples": []}]))
    assert main(["score", str(tmp_path / "bad.json"), str(out), "--function", VADER]) == 2
    assert "bad.json: record 0, samples: List should have at least 1 item" in capsys.readouterr().err
    assert main(["select", str(tmp_path / "bad.json"), str(out)]) == 2
    assert not out.exists()


def test_top_reward_percentage_sets_k(
    tiny_models: dict[str, Path], prompts_file: Path, tmp_path: Path
) -> None:
    """LMFlow's top_reward_percentage: K = 1 / percentage (0.25 -> 4, 0.1 -> 10, 0.3 -> 3)."""
    for percentage, k in ((0.25, 4), (0.1, 10), (0.3, 3)):
        out = tmp_path / f"k{k}.json"
        args = [
            "sample",
            str(prompts_file),
            str(out),
            "--model",
            str(tiny_models["policy"]),
            "--max-new-tokens",
            "4",
        ]
        assert main([*args, "--top-reward-percentage", str(percentage), "--max-prompts", "2"]) == 0
        assert [len(row.samples) for row in read_samples(out)] == [k, k]


def test_service_urls_match_in_process(
    tiny_models: dict[str, Path], prompts_file: Path, tmp_path: Path, start_service
) -> None:
    """Through a generator and a rewarder service the stages give what they give in process: the same
    samples for the same seed, and the same rewards (the services run the same engine and scorer)."""
    _, generator = start_service("services.generator", "--model", str(tiny_models["policy"]))
    _, rewarder = start_service("services.rewarder", "--model", str(tiny_models["reward"]))
    assert sample_cli(prompts_file, tmp_path / "local.json", ["--model", str(tiny_models["policy"])]) == 0
    assert sample_cli(prompts_file, tmp_path / "remote.json", ["--generator-url", generator]) == 0
    local, remote = read_samples(tmp_path / "local.json"), read_samples(tmp_path / "remote.json")
    assert [[s.text for s in r.samples] for r in remote] == [[s.text for s in r.samples] for r in local]

    samples = str(tmp_path / "local.json")
    assert (
        main(["score", samples, str(tmp_path / "s_local.json"), "--model", str(tiny_models["reward"])]) == 0
    )
    assert main(["score", samples, str(tmp_path / "s_remote.json"), "--rewarder-url", rewarder]) == 0
    local_r = np.array([r.rewards for r in read_scores(tmp_path / "s_local.json")])
    remote_r = np.array([r.rewards for r in read_scores(tmp_path / "s_remote.json")])
    assert local_r.std() > 0
    np.testing.assert_allclose(remote_r, local_r, atol=1e-4)


def test_pairs_turn_scores_into_reward_model_pairs(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``raftflow pairs``: each prompt's best non-blank sample against its worst, near-ties (below
    --min-gap) and ties skipped; the file is what ``raftflow train reward-model`` reads."""
    rows = [
        ("p0", ["fine", "great", "awful", "ok"], [0.1, 0.9, -0.7, 0.2]),
        ("p1", ["a", "b", "c", "d"], [0.5, 0.55, 0.45, 0.5]),  # 0.1 apart
        ("p2", ["x", "y", "z", "w"], [0.3, 0.3, 0.3, 0.3]),  # a tie
        ("p3", ["nice", "", "bad", "  "], [0.6, -0.9, -0.2, -0.9]),  # blanks score lowest
    ]
    records = [
        {"prompt": prompt, "rewards": rewards,
         "samples": [{"text": t, "finish_reason": "stop", "completion_tokens": 1} for t in texts]}
        for prompt, texts, rewards in rows
    ]  # fmt: skip
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(records))
    out = tmp_path / "pairs.jsonl"

    def paired(*flags: str) -> list[tuple[str, str, str]]:
        assert main(["pairs", str(scores), str(out), *flags]) == 0
        return [(p.prompt, p.chosen, p.rejected) for p in load_preferences(out)]

    assert paired() == [("p0", "great", "awful"), ("p1", "b", "c"), ("p3", "nice", "bad")]
    assert "3 pairs from 4 prompts (1 skipped)" in capsys.readouterr().out
    assert paired("--min-gap", "0.2") == [("p0", "great", "awful"), ("p3", "nice", "bad")]

    code = main([
        "train", "reward-model", "--local", "--model", str(tiny_models["reward"]), "--data", str(out),
        "--out", str(tmp_path / "ckpt"), "--job-id", "on-policy", "--epochs", "1", "--max-length", "16",
    ])  # fmt: skip
    assert code == 0
    assert (tmp_path / "ckpt" / "on-policy" / "model.safetensors").exists()

    # Bad input: exit 2, the reason named, nothing written.
    capsys.readouterr()
    never = tmp_path / "never.jsonl"
    assert main(["pairs", str(scores), str(never), "--min-gap", "5"]) == 2
    assert "no prompt of" in capsys.readouterr().err
    assert main(["pairs", str(scores), str(never), "--min-gap", "-1"]) == 2
    assert "--min-gap must be >= 0, got -1.0" in capsys.readouterr().err
    assert main(["pairs", str(tmp_path / "missing.json"), str(never)]) == 2
    assert not never.exists()
