"""Which samples RAFT keeps: the ranking step of the loop, as pure functions over reward tables.

Rewards arrive as a P x K table (P prompts, K samples each). Degenerate samples are excluded before
ranking and counted, so a reward model that loves empty strings cannot win (LMFlow hit exactly that:
its reward model was hacked by '#' tokens and Distinct-2 collapsed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Selection:
    """Indices ``(prompt_i, sample_j)`` of the kept samples, in prompt order, plus what was dropped."""

    kept: list[tuple[int, int]]
    discarded_samples: int  # degenerate samples excluded from ranking
    dropped_prompts: int  # prompts with nothing kept (all samples degenerate, filtered, or outranked)
    filtered_prompts: int = 0  # prompts left out by the reward threshold or margin filter


def degenerate_reason(text: str, min_chars: int = 2, max_repeat_fraction: float = 0.5) -> str | None:
    """Why a sample must not be trained on, or None if it is fine.

    ``max_repeat_fraction``: a response whose most frequent word makes up more than this share of
    its words (with at least 8 words) is a repetition loop, the failure RAFT drifts into when diversity
    collapses ("love the best great great great ...").
    """
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(stripped) < min_chars:
        return "too_short"
    words = stripped.split()
    if len(words) >= 8:
        most = max(words.count(w) for w in set(words))
        if most / len(words) > max_repeat_fraction:
            return "repetitive"
    return None


def valid_mask(samples: Sequence[Sequence[str]], min_chars: int = 2) -> np.ndarray:
    """P x K booleans: True where the sample may be ranked."""
    return np.array([[degenerate_reason(s, min_chars) is None for s in row] for row in samples], dtype=bool)


def select_local(rewards: np.ndarray, valid: np.ndarray) -> Selection:
    """The paper's RAFT: the best valid sample of each prompt (ties go to the earlier sample)."""
    rewards, valid = _check(rewards, valid)
    masked = np.where(valid, rewards, -np.inf)
    kept = [(i, int(np.argmax(masked[i]))) for i in range(len(rewards)) if valid[i].any()]
    return Selection(kept, int((~valid).sum()), int((~valid.any(axis=1)).sum()))


def select_global(rewards: np.ndarray, valid: np.ndarray, fraction: float) -> Selection:
    """The top ``fraction`` of all valid samples, whatever prompt they answer (LMFlow's ``top``).

    Keeps ``ceil(fraction * n_valid)`` samples; several can come from one prompt and some prompts get
    none, which is the point: it spends the training budget on the best responses overall.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rewards, valid = _check(rewards, valid)
    flat = np.flatnonzero(valid.ravel())
    keep = math.ceil(fraction * len(flat)) if len(flat) else 0
    # Stable sort on the negated reward: ties keep their (prompt, sample) order.
    order = flat[np.argsort(-rewards.ravel()[flat], kind="stable")][:keep]
    k = rewards.shape[1]
    kept = sorted((int(f // k), int(f % k)) for f in order)
    selected_prompts = {i for i, _ in kept}
    dropped = sum(1 for i in range(len(rewards)) if i not in selected_prompts)
    return Selection(kept, int((~valid).sum()), dropped)


def prompt_filter(
    rewards: np.ndarray, valid: np.ndarray, min_reward: float | None = None, min_margin: float | None = None
) -> np.ndarray:
    """P booleans: False for a prompt whose best valid sample scores below ``min_reward``, or beats
    the median of its valid samples by less than ``min_margin``.

    Both drop prompts where ranking learned nothing: every answer is bad (threshold), or the K answers
    are about equally good and the "best" one is noise of the reward model (margin). With K = 1 the
    margin is 0, so any positive ``min_margin`` drops every prompt.
    """
    rewards, valid = _check(rewards, valid)
    keep = valid.any(axis=1)
    for i in np.flatnonzero(keep):
        row = rewards[i][valid[i]]
        best = float(row.max())
        below = min_reward is not None and best < min_reward
        too_close = min_margin is not None and best - float(np.median(row)) < min_margin
        keep[i] = not (below or too_close)
    return keep


def select(
    rewards: np.ndarray,
    texts: Sequence[Sequence[str]],
    selection: Literal["local", "global"] = "local",
    fraction: float | None = None,
    min_reward: float | None = None,
    min_margin: float | None = None,
    filter_rewards: np.ndarray | None = None,
) -> Selection:
    """The loop's selection step: drop degenerate samples, then prompts failing the threshold/margin
    filter, then keep the best (local top-1, or the global top ``fraction`` of the valid samples,
    default 1/K: as many as local). The orchestrator and ``raftflow select`` both call this.

    ``rewards`` rank (the KL-penalised score with ``kl_coef``); ``filter_rewards`` (default: the same)
    are what ``min_reward`` and ``min_margin`` compare, in the reward model's units: the orchestrator
    passes the raw rewards, so a threshold means the same whatever the penalty and the policy's drift."""
    valid = valid_mask(texts)
    rewards, valid = _check(rewards, valid)
    raw = rewards if filter_rewards is None else _check(filter_rewards, valid)[0]
    eligible = prompt_filter(raw, valid, min_reward, min_margin)
    filtered = int((valid.any(axis=1) & ~eligible).sum())
    ranked = valid & eligible[:, None]
    if selection == "local":
        chosen = select_local(rewards, ranked)
    else:
        chosen = select_global(rewards, ranked, fraction or 1.0 / rewards.shape[1])
    return Selection(chosen.kept, int((~valid).sum()), chosen.dropped_prompts, filtered)


def _check(rewards: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rewards = np.asarray(rewards, dtype=float)
    valid = np.asarray(valid, dtype=bool)
    if rewards.ndim != 2 or rewards.shape != valid.shape:
        raise ValueError(f"rewards {rewards.shape} and valid {valid.shape} must be the same P x K shape")
    return rewards, valid & np.isfinite(rewards)
