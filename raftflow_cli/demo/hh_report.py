"""The ``hh`` profile's report: one row per checkpoint on the held-out HH prompts, the issue's targets,
the answers to a few fixed prompts, and a plot (report.txt / report.json / report.png)."""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from raftflow.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from raftflow.conversation import parse_prompt
from raftflow.schemas.jobs import JobResult
from raftflow.schemas.runs import RunView
from raftflow_cli.demo.hh_config import HHConfig
from raftflow_cli.demo.report import Column, Target, raft_record, table_lines, target_lines


class HHRow(BaseModel):
    iteration: int = Field(description="0 = the SFT policy; i = after i RAFT iterations.")
    checkpoint: str
    reward: float = Field(description="Mean reward of all held-out samples.")
    reward_std: float
    best_of_k: float = Field(description="Mean over held-out prompts of the best of K samples' rewards.")
    kl_to_sft: float = Field(description="Mean log p(sample) - log p_SFT(sample) over held-out samples.")
    ppl: float = Field(description="Perplexity of the held-out chosen replies.")
    distinct_2: float
    mean_length: float = Field(description="Tokens per sample.")
    samples: int = Field(
        default=0, ge=0, description="Held-out samples scored (prompts x K); 0: not recorded."
    )
    shown: list[str] = Field(description="First sample for each shown held-out prompt.")


class HHSummary(BaseModel):
    reward_gain_std: float = Field(description="(final reward - SFT reward) / SFT reward std.")
    reward_gain_se: float | None = Field(
        default=None,
        description="Standard error of reward_gain_std from the two rows' sample counts and stds (the "
        "rows as independent samples; sharing the prompts makes the true error somewhat smaller).",
    )
    rising_iterations: int
    distinct2_ratio: float
    ppl_ratio: float
    reward_model_accuracy: float | None
    targets: list[Target]
    all_met: bool


class HHReport(BaseModel):
    profile: str
    seed: int
    wall_seconds: float
    stage_seconds: dict[str, float]
    config: dict[str, Any]
    data: dict[str, Any]
    sft: dict[str, Any]
    reward_model: dict[str, Any]
    raft: dict[str, Any]
    shown_prompts: list[str]
    rows: list[HHRow]
    summary: HHSummary


def build_hh_report(
    *,
    config: HHConfig,
    data_card: dict,
    sft: JobResult,
    reward_model: JobResult,
    run: RunView,
    checkpoints: list[str],
    evaluations: list[dict],
    shown_prompts: list[str],
    stage_seconds: dict[str, float],
    wall_seconds: float,
) -> HHReport:
    rows = [
        HHRow(iteration=i, checkpoint=c, **e)
        for i, (c, e) in enumerate(zip(checkpoints, evaluations, strict=True))
    ]
    return HHReport(
        profile=config.profile,
        seed=config.seed,
        wall_seconds=wall_seconds,
        stage_seconds=stage_seconds,
        config=config.model_dump(mode="json"),
        data=data_card,
        sft=sft.model_dump(mode="json"),
        reward_model=reward_model.model_dump(mode="json"),
        raft=raft_record(run),
        shown_prompts=shown_prompts,
        rows=rows,
        summary=summarize_hh(rows, config, reward_model.metrics.get("eval_accuracy")),
    )


def summarize_hh(rows: list[HHRow], config: HHConfig, rm_accuracy: float | None) -> HHSummary:
    t = config.targets
    first, last = rows[0], rows[-1]
    gain_std = (last.reward - first.reward) / first.reward_std if first.reward_std > 0 else 0.0
    gain_se = None
    if first.samples and last.samples and first.reward_std > 0:
        gain_se = math.sqrt(first.reward_std**2 / first.samples + last.reward_std**2 / last.samples)
        gain_se /= first.reward_std
    gain_measured = f"{gain_std:+.2f}" + (
        f" (standard error {gain_se:.2f}, {last.samples} samples per row)" if gain_se is not None else ""
    )
    rising = sum(b.reward > a.reward for a, b in zip(rows, rows[1:], strict=False))
    d2 = last.distinct_2 / first.distinct_2 if first.distinct_2 > 0 else 0.0
    ppl = last.ppl / first.ppl if first.ppl > 0 else float("inf")
    accuracy = rm_accuracy if rm_accuracy is not None else float("nan")
    targets = [
        Target(name="reward model held-out pairwise accuracy", wanted=f">= {t.min_rm_accuracy}",
               measured=f"{accuracy:.3f}", met=accuracy >= t.min_rm_accuracy),
        Target(name="held-out reward rises", wanted=f">= {t.min_rising_iterations} of {len(rows) - 1}",
               measured=str(rising), met=rising >= t.min_rising_iterations),
        Target(name="final held-out reward over SFT", wanted=f">= {t.min_reward_gain_std} SFT reward std",
               measured=gain_measured, met=gain_std >= t.min_reward_gain_std),
        Target(name="distinct-2 kept", wanted=f">= {t.min_distinct2_ratio}x SFT", measured=f"{d2:.3f}x",
               met=d2 >= t.min_distinct2_ratio),
        Target(name="held-out perplexity", wanted=f"<= {t.max_ppl_ratio}x SFT", measured=f"{ppl:.3f}x",
               met=ppl <= t.max_ppl_ratio),
    ]  # fmt: skip
    return HHSummary(
        reward_gain_std=gain_std,
        reward_gain_se=gain_se,
        rising_iterations=rising,
        distinct2_ratio=d2,
        ppl_ratio=ppl,
        reward_model_accuracy=rm_accuracy,
        targets=targets,
        all_met=all(target.met for target in targets),
    )


_COLUMNS: tuple[Column, ...] = (
    ("iter", "iteration", "{:>4d}"),
    ("reward", "reward", "{:>7.3f}"),
    ("best-of-K", "best_of_k", "{:>9.3f}"),
    ("KL(SFT)", "kl_to_sft", "{:>8.3f}"),
    ("PPL", "ppl", "{:>7.2f}"),
    ("distinct-2", "distinct_2", "{:>10.3f}"),
    ("length", "mean_length", "{:>6.1f}"),
)


def render_hh_table(report: HHReport) -> str:
    lines = table_lines(report.rows, _COLUMNS)
    lines.append("")
    lines.append("iteration 0 = the SFT policy; held-out HH prompts, the same seed for every checkpoint.")
    lines.extend(target_lines(report.summary.targets))
    for number, prompt in enumerate(report.shown_prompts):
        turns = parse_prompt(prompt)
        lines.append("")
        lines.append(f"held-out prompt {number + 1}: {_short(turns[-1]['content'], 200)}")
        for row in report.rows:
            lines.append(f"  [{row.iteration}] {_short(row.shown[number], 300)}")
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in report.stage_seconds.items())
    lines.append("")
    lines.append(f"wall time {report.wall_seconds:.0f}s ({stages})")
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" ...") or "(empty)"


def render_hh_plot(report: HHReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows
    x = [r.iteration for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    panels = (
        (axes[0][0], "reward on held-out prompts", (("reward", "mean"), ("best_of_k", "best-of-K"))),
        (axes[0][1], "KL to the SFT policy", (("kl_to_sft", "KL"),)),
        (axes[1][0], "diversity and length", (("distinct_2", "distinct-2"),)),
        (axes[1][1], "perplexity of held-out chosen replies", (("ppl", "PPL"),)),
    )
    for ax, title, series in panels:
        for key, label in series:
            ax.plot(x, [getattr(r, key) for r in rows], "o-", label=label)
        ax.set_title(title)
        ax.set_xlabel("iteration (0 = SFT)")
        ax.set_xticks(x)
        ax.legend(fontsize="small", frameon=False)
    twin = axes[1][0].twinx()
    twin.plot(x, [r.mean_length for r in rows], "s--", color="tab:gray")
    twin.set_ylabel("length (tokens)", color="tab:gray")
    verdict = "targets met" if report.summary.all_met else "targets NOT met"
    fig.suptitle(
        f"raftflow demo (hh, SmolLM2 + MiniLM RM): reward {report.summary.reward_gain_std:+.2f} SFT std, "
        f"distinct-2 x{report.summary.distinct2_ratio:.2f}, PPL x{report.summary.ppl_ratio:.2f} - {verdict}"
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write_hh_report(report: HHReport, out_dir: Path) -> dict[str, Path]:
    paths = {"json": out_dir / "report.json", "png": out_dir / "report.png", "txt": out_dir / "report.txt"}
    write_json_atomic(paths["json"], report.model_dump(mode="json"))
    write_bytes_atomic(paths["png"], render_hh_plot(report))
    write_text_atomic(paths["txt"], render_hh_table(report) + "\n")
    return paths
