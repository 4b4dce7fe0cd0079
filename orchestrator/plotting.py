"""Reward curves of a run as a PNG (matplotlib, headless Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

# (metric key, label) per panel; a key missing from every iteration is left out.
REWARD_CURVES = [
    ("on_policy_reward", "on-policy reward"),
    ("best_of_k_reward", "best-of-K reward"),
    ("selected_reward", "selected reward"),
    ("eval_reward", "held-out reward (after training)"),
    ("gold_on_policy_reward", "gold on-policy reward"),
    ("gold_eval_reward", "gold held-out reward"),
]
DIVERSITY_CURVES = [("distinct_2", "distinct-2"), ("distinct_1", "distinct-1")]


def plot_run(run_id: str, iterations: list[dict[str, float]]) -> bytes:
    """Two panels: rewards per iteration, and diversity per iteration."""
    fig, (rewards_ax, diversity_ax) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    x = list(range(len(iterations)))
    for ax, curves, title in (
        (rewards_ax, REWARD_CURVES, "reward"),
        (diversity_ax, DIVERSITY_CURVES, "diversity"),
    ):
        for key, label in curves:
            ys = [m.get(key) for m in iterations]
            if any(y is not None for y in ys):
                ax.plot(x, [float("nan") if y is None else y for y in ys], marker="o", label=label)
        ax.set_xlabel("iteration")
        ax.set_title(f"{title} — run {run_id}")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
