"""The fast demo profile through the same command path users run (``raftflow demo``): real Redis
(embedded), trainer worker, generator, both rewarders and orchestrator as processes, tiny models.

It checks what the report promises (one row per checkpoint, every number finite, the PNG a PNG, the
verdict stated) and that the stack is gone afterwards: no process of it alive, no temp entry left.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from raftflow.data import load_preferences
from raftflow_cli.commands import main
from raftflow_cli.demo.stack import pid_alive, processes_in_groups

ROW_KEYS = {
    "iteration",
    "checkpoint",
    "proxy_reward",
    "gold_reward",
    "gold_std",
    "proxy_best_of_k",
    "gold_of_best",
    "distinct_2",
    "mean_length",
    "perplexity",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERVICES = {"trainer", "generator", "proxy_rewarder", "gold_rewarder", "orchestrator"}


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """One fast demo for the module (the run is the expensive part; the tests read its outputs)."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("REDIS_URL", raising=False)  # the embedded Redis: a private queue for this run
    out = tmp_path_factory.mktemp("demo") / "run"
    try:
        code = main(["demo", "--fast", "--out", str(out)])
    finally:
        monkeypatch.undo()
    return code, out


def test_fast_demo_succeeds_and_writes_the_three_reports(fast_run: tuple[int, Path]) -> None:
    code, out = fast_run
    assert code == 0
    assert (out / "report.png").read_bytes().startswith(PNG_MAGIC)
    text = (out / "report.txt").read_text()
    assert "distinct-2" in text and "gold" in text and "proxy" in text
    assert "NOT met" in text or "All targets met" in text  # the verdict is always stated


def test_report_json_has_one_finite_row_per_checkpoint(fast_run: tuple[int, Path]) -> None:
    _, out = fast_run
    report = json.loads((out / "report.json").read_text())
    assert {"profile", "rows", "summary", "stage_seconds", "wall_seconds", "reward_model", "raft"} <= set(
        report
    )
    assert report["profile"] == "fast"
    iterations = report["config"]["raft"]["iterations"]
    rows = report["rows"]
    assert [row["iteration"] for row in rows] == list(range(iterations + 1))  # 0 = the SFT model
    for row in rows:
        assert set(row) >= ROW_KEYS
        numbers = [v for k, v in row.items() if k not in ("checkpoint", "on_policy", "iteration")]
        assert all(isinstance(v, float) and math.isfinite(v) for v in numbers), row
        assert Path(row["checkpoint"]).is_dir()
    # The loop's own on-policy metrics (RAFT prompts) ride along for the policies it sampled.
    assert "raft_gold_on_policy" in rows[0]["on_policy"]
    assert rows[-1]["checkpoint"] != rows[0]["checkpoint"]

    summary = report["summary"]
    assert {"gold_gain_std", "distinct2_ratio", "rising_iterations", "targets", "all_met"} <= set(summary)
    assert math.isfinite(summary["gold_gain_std"]) and math.isfinite(summary["distinct2_ratio"])
    assert [t["name"] for t in summary["targets"]] == ["gold rises", "gold gain", "diversity kept"]
    # One iteration cannot rise over three: the fast profile must say so, not claim success.
    assert summary["targets"][0]["met"] is False and summary["all_met"] is False
    accuracy = report["reward_model"]["metrics"]["eval_accuracy"]
    assert 0.0 <= accuracy <= 1.0


def test_reward_model_trains_on_corpus_and_on_policy_pairs(fast_run: tuple[int, Path]) -> None:
    """The fast profile samples the SFT policy on 32 prompts for on-policy pairs: every pair the
    report counts is in the file the reward-model job read, each a response to its own prompt."""
    _, out = fast_run
    card = json.loads((out / "data" / "data_card.json").read_text())
    assert card["policy_prompts"] == 32
    [policy_file] = (out / "data").glob("demo-policy-pairs-*.jsonl")  # named by what decides it
    policy = load_preferences(policy_file)
    assert len(policy) == card["policy_pairs"] <= 32
    assert all(pair.chosen != pair.rejected and pair.prompt for pair in policy)
    trained_on = load_preferences(out / "data" / "reward_pairs.jsonl")
    assert len(trained_on) == card["preference_pairs"] + card["policy_pairs"]
    assert set(policy) <= set(trained_on)
    report = json.loads((out / "report.json").read_text())
    metrics = report["reward_model"]["metrics"]
    assert metrics["examples"] + metrics["dropped_examples"] + metrics["eval_pairs"] == len(trained_on)
    assert f"{card['preference_pairs']} corpus pairs" in (out / "report.txt").read_text()


def test_stack_is_gone_and_nothing_half_written(fast_run: tuple[int, Path]) -> None:
    _, out = fast_run
    stack = json.loads((out / "stack.json").read_text())
    assert stack["stopped"] is True
    assert set(stack["services"]) == {
        "trainer",
        "generator",
        "gold_rewarder",
        "proxy_rewarder",
        "orchestrator",
    }
    groups = {service["process_group"] for service in stack["services"].values()}
    assert processes_in_groups(groups) == []
    assert stack["redis"]["embedded"] and not pid_alive(stack["redis"]["pid"])
    leftovers = [p for p in out.rglob(".*") if ".tmp" in p.name]
    assert leftovers == []
    assert not (out / "redis").exists()  # the embedded queue's state goes with the run


def test_a_rerun_reuses_sft_pairs_and_reward_model_and_reruns_raft(
    fast_run: tuple[int, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same settings in the same directory: the SFT checkpoint, the on-policy pairs and the reward
    model are reused (job ids and the pairs' file name hash what decides them); only RAFT runs again.
    Last in the module: it rewrites the run directory the other tests read."""
    _, out = fast_run
    first = json.loads((out / "report.json").read_text())
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["demo", "--fast", "--out", str(out)]) == 0
    printed = capsys.readouterr().err  # progress lines go to stderr
    assert "reused from demo-policy-pairs-" in printed
    again = json.loads((out / "report.json").read_text())
    assert again["sft"]["checkpoint"] == first["sft"]["checkpoint"]
    assert again["reward_model"]["checkpoint"] == first["reward_model"]["checkpoint"]
    assert again["reward_model"]["metrics"] == first["reward_model"]["metrics"]
    assert again["data"]["policy_pairs"] == first["data"]["policy_pairs"]
    assert again["stage_seconds"]["policy_pairs"] < 5  # nothing sampled
