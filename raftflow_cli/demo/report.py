"""The demo's report: one row per checkpoint (iteration 0 = the SFT model), a summary that checks the
targets, and three renderings of it: a terminal table, a PNG plot and JSON.

The verdict is computed, never assumed: each target says whether it was met, and the text says so
plainly when it was not. Proxy and gold are shown side by side because a proxy that rises while the
gold stays flat is reward hacking, which is the failure this demo exists to make visible.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from raftflow.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from raftflow.schemas.jobs import JobResult
from raftflow.schemas.runs import RunView
from raftflow_cli.demo.config import DemoConfig

# Orchestrator metrics of iteration i (samples of policy i on that iteration's RAFT prompts).
_ON_POLICY_KEYS = {
    "on_policy_reward": "raft_proxy_on_policy",
    "gold_on_policy_reward": "raft_gold_on_policy",
    "best_of_k_reward": "raft_proxy_best_of_k",
    "gold_best_of_k_reward": "raft_gold_best_of_k",
    "gold_selected_reward": "raft_gold_selected",
    "distinct_2": "raft_distinct_2",
    "mean_length": "raft_mean_length",
    "discard_rate": "raft_discard_rate",
}


class Row(BaseModel):
    """One checkpoint judged on the held-out eval prompts (plus, where the loop sampled it, what the
    orchestrator measured on that iteration's RAFT prompts)."""

    iteration: int = Field(description="0 = the SFT model; i = after i RAFT iterations.")
    checkpoint: str
    proxy_reward: float = Field(description="Mean proxy reward of all eval samples.")
    gold_reward: float = Field(description="Mean gold (VADER) reward of all eval samples.")
    gold_std: float
    proxy_std: float
    proxy_best_of_k: float = Field(description="Mean over prompts of the best proxy reward of K samples.")
    gold_of_best: float = Field(description="Gold reward of the proxy's pick: what RAFT trains on.")
    gold_best_of_k: float
    distinct_1: float
    distinct_2: float
    mean_length: float = Field(description="Mean response length in tokens.")
    perplexity: float = Field(description="Held-out SFT pairs, per response token.")
    on_policy: dict[str, float] = Field(default_factory=dict, description="The orchestrator's metrics.")


class Target(BaseModel):
    name: str
    wanted: str
    measured: str
    met: bool


class Summary(BaseModel):
    gold_gain: float
    gold_gain_std: float = Field(description="(final gold - SFT gold) / SFT gold std.")
    proxy_gain: float
    proxy_gain_std: float
    distinct2_ratio: float = Field(description="final distinct-2 / SFT distinct-2.")
    rising_iterations: int = Field(description="Iterations whose gold reward rose over the previous one.")
    gold_monotone: bool
    reward_model_accuracy: float | None
    targets: list[Target]
    all_met: bool
    hacking_suspected: bool = Field(description="Proxy rose by >= 1 std while gold rose by < 0.25 std.")
    lines: list[str] = Field(description="The verdict in words.")


class DemoReport(BaseModel):
    profile: str
    seed: int
    wall_seconds: float
    stage_seconds: dict[str, float]
    config: dict[str, Any]
    data: dict[str, Any]
    sft: dict[str, Any]
    reward_model: dict[str, Any]
    raft: dict[str, Any]
    rows: list[Row]
    summary: Summary


def build_report(
    *,
    config: DemoConfig,
    data_card: dict,
    sft: JobResult,
    reward_model: JobResult,
    run: RunView,
    checkpoints: list[str],
    evaluations: list[dict[str, float]],
    perplexities: list[float],
    stage_seconds: dict[str, float],
    wall_seconds: float,
) -> DemoReport:
    on_policy = [it.metrics for it in sorted(run.iterations, key=lambda it: it.index)]
    rows = []
    for index, (checkpoint, evaluation, ppl) in enumerate(
        zip(checkpoints, evaluations, perplexities, strict=True)
    ):
        measured = on_policy[index] if index < len(on_policy) else {}
        rows.append(
            Row(
                iteration=index,
                checkpoint=checkpoint,
                perplexity=ppl,
                on_policy={
                    new: float(measured[old]) for old, new in _ON_POLICY_KEYS.items() if old in measured
                },
                **{k: evaluation[k] for k in Row.model_fields if k in evaluation},
            )
        )
    return DemoReport(
        profile=config.profile,
        seed=config.seed,
        wall_seconds=wall_seconds,
        stage_seconds=stage_seconds,
        config=config.model_dump(mode="json"),
        data=data_card,
        sft=sft.model_dump(mode="json"),
        reward_model=reward_model.model_dump(mode="json"),
        raft=raft_record(run),
        rows=rows,
        summary=summarize(rows, config, reward_model.metrics.get("eval_accuracy")),
    )


def raft_record(run: RunView) -> dict[str, Any]:
    """What a report keeps of the RAFT run: where to find it, what was asked, what each iteration did."""
    return {
        "run_id": run.id,
        "url": run.url,
        "status": run.status,
        "request": run.request.model_dump(mode="json"),
        "iterations": [it.model_dump(mode="json") for it in run.iterations],
    }


def summarize(rows: list[Row], config: DemoConfig, rm_accuracy: float | None) -> Summary:
    first, last = rows[0], rows[-1]
    targets_cfg = config.targets
    gold_gain = last.gold_reward - first.gold_reward
    gold_gain_std = gold_gain / first.gold_std if first.gold_std > 0 else 0.0
    proxy_gain = last.proxy_reward - first.proxy_reward
    proxy_gain_std = proxy_gain / first.proxy_std if first.proxy_std > 0 else 0.0
    d2_ratio = last.distinct_2 / first.distinct_2 if first.distinct_2 > 0 else 0.0
    rises = [b.gold_reward > a.gold_reward for a, b in zip(rows, rows[1:], strict=False)]
    rising = sum(rises)
    iterations = len(rows) - 1
    targets = [
        Target(
            name="gold rises",
            wanted=f"over >= {targets_cfg.min_rising_iterations} iterations",
            measured=f"rose in {rising} of {iterations}",
            met=rising >= targets_cfg.min_rising_iterations,
        ),
        Target(
            name="gold gain",
            wanted=f">= {targets_cfg.min_gold_gain_std:g} SFT gold std",
            measured=f"{gold_gain_std:+.2f} std ({first.gold_reward:.3f} -> {last.gold_reward:.3f})",
            met=gold_gain_std >= targets_cfg.min_gold_gain_std,
        ),
        Target(
            name="diversity kept",
            wanted=f"distinct-2 >= {targets_cfg.min_distinct2_ratio:g}x SFT",
            measured=f"{d2_ratio:.3f}x ({first.distinct_2:.3f} -> {last.distinct_2:.3f})",
            met=d2_ratio >= targets_cfg.min_distinct2_ratio,
        ),
    ]
    hacking = proxy_gain_std >= 1.0 and gold_gain_std < 0.25
    all_met = all(t.met for t in targets)
    lines = []
    if all_met:
        lines.append("All targets met: RAFT on the proxy reward raised the gold reward and kept diversity.")
    else:
        missed = ", ".join(t.name for t in targets if not t.met)
        lines.append(f"Targets NOT met: {missed}.")
        if iterations < targets_cfg.min_rising_iterations:
            lines.append(
                f"(this profile runs {iterations} RAFT iteration(s) and the rising target needs "
                f"{targets_cfg.min_rising_iterations}: it checks the pipeline, not the recipe)"
            )
    if hacking:
        lines.append("Reward hacking suspected: the proxy rose while the gold reward stayed flat.")
    lines.append(
        f"gold {first.gold_reward:+.3f} -> {last.gold_reward:+.3f} ({gold_gain_std:+.2f} SFT std); "
        f"proxy {first.proxy_reward:+.3f} -> {last.proxy_reward:+.3f}; distinct-2 x{d2_ratio:.2f}; "
        f"perplexity {first.perplexity:.1f} -> {last.perplexity:.1f}"
    )
    return Summary(
        gold_gain=gold_gain,
        gold_gain_std=gold_gain_std,
        proxy_gain=proxy_gain,
        proxy_gain_std=proxy_gain_std,
        distinct2_ratio=d2_ratio,
        rising_iterations=rising,
        gold_monotone=all(rises),
        reward_model_accuracy=rm_accuracy,
        targets=targets,
        all_met=all_met,
        hacking_suspected=hacking,
        lines=lines,
    )


# -- renderings -----------------------------------------------------------------------------------------

_COLUMNS = (
    ("iter", "iteration", "{:>4d}"),
    ("proxy", "proxy_reward", "{:>7.3f}"),
    ("gold", "gold_reward", "{:>7.3f}"),
    ("gold sd", "gold_std", "{:>7.3f}"),
    ("best-of-K", "proxy_best_of_k", "{:>9.3f}"),
    ("gold@best", "gold_of_best", "{:>9.3f}"),
    ("distinct-2", "distinct_2", "{:>10.3f}"),
    ("length", "mean_length", "{:>6.1f}"),
    ("ppl", "perplexity", "{:>8.1f}"),
)


Column = tuple[str, str, str]
"""(title, row field, format spec) of one table column."""


def table_lines(rows: Sequence[BaseModel], columns: Sequence[Column]) -> list[str]:
    """A fixed-width table of ``rows`` (one line per row, under a header and a rule)."""
    header = "  ".join(f"{title:>{_width(fmt)}}" for title, _, fmt in columns)
    lines = [header, "-" * len(header)]
    for row in rows:
        values = row.model_dump()
        lines.append("  ".join(fmt.format(values[key]) for _, key, fmt in columns))
    return lines


def target_lines(targets: Sequence[Target]) -> list[str]:
    return [
        f"  [{'met' if t.met else 'NOT met':>7}] {t.name}: wanted {t.wanted}; measured {t.measured}"
        for t in targets
    ]


def render_table(report: DemoReport) -> str:
    """The per-iteration table and the verdict, as printed at the end of ``raftflow demo``."""
    lines = table_lines(report.rows, _COLUMNS)
    s = report.summary
    lines.append("")
    lines.append(
        "iteration 0 = the SFT model; rewards are means over all eval samples (held-out prompts), "
        "best-of-K and gold@best use the proxy's pick."
    )
    accuracy = f"{s.reward_model_accuracy:.3f}" if s.reward_model_accuracy is not None else "n/a"
    trained_on = f"{report.data.get('preference_pairs', 0)} corpus pairs"
    if report.data.get("policy_pairs"):
        trained_on += f" + {report.data['policy_pairs']} pairs of the SFT policy's own samples"
    lines.append(f"proxy reward model held-out pairwise accuracy: {accuracy} (gold-labelled: {trained_on})")
    lines.extend(target_lines(s.targets))
    lines.extend(s.lines)
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in report.stage_seconds.items())
    lines.append(f"wall time {report.wall_seconds:.0f}s ({stages})")
    return "\n".join(lines)


def _width(fmt: str) -> int:
    return int("".join(ch for ch in fmt.split(":")[1].split(".")[0] if ch.isdigit()))


def render_plot(report: DemoReport) -> bytes:
    """A 2x2 PNG: rewards (gold left axis, proxy right axis), best-of-K, distinct-2 against its
    target line, perplexity and length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows
    x = [r.iteration for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    ax = axes[0][0]
    ax.plot(x, [r.gold_reward for r in rows], "o-", color="tab:green", label="gold (VADER)")
    ax.set_ylabel("gold reward", color="tab:green")
    twin = ax.twinx()
    twin.plot(x, [r.proxy_reward for r in rows], "s--", color="tab:blue", label="proxy (reward model)")
    twin.set_ylabel("proxy reward", color="tab:blue")
    ax.set_title("on-policy reward (held-out prompts)")
    ax.legend(handles=ax.get_lines() + twin.get_lines(), loc="upper left", fontsize="small", frameon=False)

    ax = axes[0][1]
    ax.plot(x, [r.proxy_best_of_k for r in rows], "s--", color="tab:blue", label="proxy best-of-K")
    ax.plot(x, [r.gold_of_best for r in rows], "o-", color="tab:green", label="gold of the proxy's pick")
    ax.plot(x, [r.gold_best_of_k for r in rows], "^:", color="tab:olive", label="gold best-of-K")
    ax.set_title("best of K samples")
    ax.legend(fontsize="small", frameon=False)

    ax = axes[1][0]
    ax.plot(x, [r.distinct_2 for r in rows], "o-", color="tab:purple", label="distinct-2")
    ax.axhline(
        rows[0].distinct_2 * _d2_target(report),
        color="tab:red",
        linestyle=":",
        label=f"target {_d2_target(report):g}x SFT",
    )
    ax.set_title("diversity")
    ax.legend(fontsize="small", frameon=False)

    ax = axes[1][1]
    ax.plot(x, [r.perplexity for r in rows], "o-", color="tab:orange", label="held-out perplexity")
    ax.set_ylabel("perplexity", color="tab:orange")
    twin = ax.twinx()
    twin.plot(x, [r.mean_length for r in rows], "s--", color="tab:gray", label="length (tokens)")
    twin.set_ylabel("length (tokens)", color="tab:gray")
    ax.set_title("cost: perplexity of held-out fortunes, length")

    for ax in axes.flat:
        ax.set_xlabel("iteration (0 = SFT)")
        ax.set_xticks(x)
    verdict = "targets met" if report.summary.all_met else "targets NOT met"
    fig.suptitle(
        f"raftflow demo ({report.profile}): gold {report.summary.gold_gain_std:+.2f} SFT std, "
        f"distinct-2 x{report.summary.distinct2_ratio:.2f} - {verdict}"
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _d2_target(report: DemoReport) -> float:
    return float(report.config["targets"]["min_distinct2_ratio"])


def write_report(report: DemoReport, out_dir: Path) -> dict[str, Path]:
    """``report.json``, ``report.png`` and ``report.txt`` in ``out_dir``, each written atomically."""
    paths = {"json": out_dir / "report.json", "png": out_dir / "report.png", "txt": out_dir / "report.txt"}
    write_json_atomic(paths["json"], report.model_dump(mode="json"))
    write_bytes_atomic(paths["png"], render_plot(report))
    write_text_atomic(paths["txt"], render_table(report) + "\n")
    return paths
