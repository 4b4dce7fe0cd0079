"""The numbers a RAFT iteration is judged by, as pure functions (shared by orchestrator, demo, bench).

On-policy reward is the mean reward of the FIRST sample of each prompt: an unbiased estimate of the
current policy's reward (the best-of-K mean is biased upward by selection, and the gap between the two
is what RAFT can still harvest). Distinct-n is the share of unique n-grams, the paper's diversity
measure: reward going up while distinct-2 collapses is mode collapse, not alignment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over the whole set (0.0 when there are none)."""
    total = 0
    unique: set[tuple[str, ...]] = set()
    for text in texts:
        words = text.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def reward_table_metrics(rewards: np.ndarray) -> dict[str, float]:
    """Metrics of a P x K reward table (NaN marks a sample that could not be scored)."""
    rewards = np.asarray(rewards, dtype=float)
    on_policy = float(np.nanmean(rewards[:, 0]))
    best_of_k = float(np.nanmean(np.nanmax(rewards, axis=1)))
    return {
        "on_policy_reward": on_policy,
        "best_of_k_reward": best_of_k,
        "reward_gap": best_of_k - on_policy,
        "reward_std": float(np.nanstd(rewards)),
    }


def text_metrics(samples: Sequence[Sequence[str]], lengths: Sequence[Sequence[int]]) -> dict[str, float]:
    """Diversity and length over every sample of the iteration."""
    flat = [text for row in samples for text in row]
    return {
        "distinct_1": distinct_n(flat, 1),
        "distinct_2": distinct_n(flat, 2),
        "mean_length": float(np.mean([n for row in lengths for n in row])) if flat else 0.0,
    }


def kl_estimate(logp_policy: Sequence[float], logp_reference: Sequence[float]) -> float:
    """Monte-Carlo KL(policy || reference) from samples drawn from the policy: mean of
    log p(y|x) - log p0(y|x) over sequences. Unbiased, can be slightly negative on few samples."""
    if len(logp_policy) != len(logp_reference) or not len(logp_policy):
        raise ValueError("need the same, non-zero number of policy and reference log-probs")
    return float(np.mean(np.asarray(logp_policy) - np.asarray(logp_reference)))
