"""The hh demo profile's pieces that need no model: the data split and the verdict. The whole profile
runs as a documented command (``make demo-hh``), not in CI (about 25 minutes on 2 cores)."""

from __future__ import annotations

from pathlib import Path

from raftflow.data import load_pairs, load_preferences, load_prompts
from raftflow_cli.demo.hh_config import HHConfig, HHData
from raftflow_cli.demo.hh_data import build_hh_data
from raftflow_cli.demo.hh_report import HHRow, summarize_hh


def test_held_out_prompts_never_train_and_every_file_is_in_the_loaders_shape(tmp_path: Path) -> None:
    options = HHData(eval_prompts=16, sft_examples=64, reward_pairs=200)
    data = build_hh_data(tmp_path, options, seed=3, raft_prompts=40)
    sft, pairs = load_pairs(data.sft), load_preferences(data.reward_pairs)
    raft, held = load_prompts(data.raft_prompts), load_prompts(data.eval_prompts)
    assert (len(sft), len(pairs), len(raft), len(held)) == (64, 200, 40, 16)
    trained = {p.prompt for p in sft} | {p.prompt for p in pairs} | set(raft)
    assert not trained & set(held)
    assert all(p.prompt is not None and p.chosen != p.rejected for p in pairs)
    assert all(p.startswith("\n\nHuman:") and p.endswith("\n\nAssistant:") for p in held)
    assert [p.prompt for p in load_pairs(data.heldout)] == held
    assert all(len(p.prompt) <= options.max_prompt_chars for p in sft)
    # Same seed, same split.
    again = build_hh_data(tmp_path / "again", options, seed=3, raft_prompts=40)
    assert load_prompts(again.eval_prompts) == held


def row(iteration: int, reward: float, **overrides: float) -> HHRow:
    values = dict(reward_std=1.0, best_of_k=reward + 0.5, kl_to_sft=0.1 * iteration, ppl=10.0, distinct_2=0.8)
    values.update(overrides)
    return HHRow(
        iteration=iteration, checkpoint=f"c{iteration}", reward=reward, mean_length=30.0, shown=[], **values
    )


def test_verdict_checks_each_target_of_the_issue() -> None:
    rows = [row(0, 0.0), row(1, 0.2), row(2, 0.1), row(3, 0.4), row(4, 0.6, ppl=12.0, distinct_2=0.76)]
    summary = summarize_hh(rows, HHConfig(), rm_accuracy=0.65)
    met = {t.name: t.met for t in summary.targets}
    assert summary.rising_iterations == 3 and abs(summary.reward_gain_std - 0.6) < 1e-9
    assert abs(summary.ppl_ratio - 1.2) < 1e-9 and abs(summary.distinct2_ratio - 0.95) < 1e-9
    assert all(met.values()) and summary.all_met
    worse = summarize_hh(rows[:-1] + [row(4, 0.3, ppl=13.0)], HHConfig(), rm_accuracy=0.6)
    met = {t.name: t.met for t in worse.targets}
    assert not met["reward model held-out pairwise accuracy"]
    assert not met["held-out reward rises"]  # 0 -> .2, .2 -> .1, .1 -> .4, .4 -> .3: two rises
    assert not met["final held-out reward over SFT"] and not met["held-out perplexity"]
    assert met["distinct-2 kept"] and not worse.all_met
    assert summary.reward_gain_se is None  # rows that do not record their sample count


def test_gain_carries_its_standard_error_in_sft_std_units() -> None:
    first = row(0, 0.0, reward_std=0.5)
    first.samples = 60
    last = row(1, 0.3, reward_std=0.4)
    last.samples = 60
    summary = summarize_hh([first, last], HHConfig(), rm_accuracy=0.7)
    # sqrt(0.5^2/60 + 0.4^2/60) / 0.5 = 0.1653
    assert abs(summary.reward_gain_std - 0.6) < 1e-9 and abs(summary.reward_gain_se - 0.1653) < 1e-4
    gain = next(t for t in summary.targets if t.name == "final held-out reward over SFT")
    assert gain.measured == "+0.60 (standard error 0.17, 60 samples per row)" and gain.met


def test_report_prints_the_table_targets_and_answers_and_plots(tmp_path: Path) -> None:
    from raftflow_cli.demo.hh_report import HHReport, render_hh_plot, render_hh_table, write_hh_report

    rows = [row(i, 0.1 * i, ppl=10.0 + i) for i in range(3)]
    for r in rows:
        r.shown = [f"answer {r.iteration} to the question"]
    report = HHReport(
        profile="hh", seed=0, wall_seconds=60.0, stage_seconds={"raft": 30.0}, config={}, data={}, sft={},
        reward_model={}, raft={}, shown_prompts=["\n\nHuman: Why is the sky blue?\n\nAssistant:"], rows=rows,
        summary=summarize_hh(rows, HHConfig(), rm_accuracy=0.7),
    )  # fmt: skip
    table = render_hh_table(report)
    assert "   2    0.200" in table and "KL(SFT)" in table
    assert "[NOT met] held-out perplexity: wanted <= 1.25x SFT; measured 1.200x" not in table
    assert "[    met] held-out perplexity" in table and "[NOT met] held-out reward rises" in table
    assert "held-out prompt 1: Why is the sky blue?" in table and "[2] answer 2 to the question" in table
    assert render_hh_plot(report).startswith(b"\x89PNG")
    paths = write_hh_report(report, tmp_path)
    assert HHReport.model_validate_json(paths["json"].read_text()) == report
