"""Preference pairs from scored samples: each prompt's best sample against its worst.

Why: a reward model learns to rank what it is trained on. Corpus pairs (two human-written replies)
teach it to rank human text, but RAFT asks it to rank the policy's own samples; whatever it gets wrong
there is what RAFT climbs. InstructGPT labels samples of the policy it will optimise for this reason.
Sample the policy (``raftflow sample``), score the samples with the labeller you trust
(``raftflow score``: a stronger reward model, a rule, a human-filled scores file), and this turns the
scores into pairs for ``raftflow train reward-model``. The widest gap among a prompt's K samples is the
pair least likely to be a near-tie. The demo builds its on-policy pairs with the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftflow.data import PreferencePair


def best_worst_pairs(
    prompts: Sequence[str],
    samples: Sequence[Sequence[str]],
    scores: Sequence[Sequence[float]],
    min_gap: float,
) -> list[PreferencePair]:
    """One (best, worst) pair per prompt whose two differ by at least ``min_gap`` (and by more than
    0: a tie has no preferred side, nor have two identical texts). Blank samples (the policy ended at
    once) are never a side: a preference file holds no empty side."""
    pairs = []
    for prompt, row, row_scores in zip(prompts, samples, scores, strict=True):
        candidates = [i for i, text in enumerate(row) if text.strip()]
        if len(candidates) < 2:
            continue
        best = max(candidates, key=row_scores.__getitem__)
        worst = min(candidates, key=row_scores.__getitem__)
        gap = row_scores[best] - row_scores[worst]
        if gap > 0 and gap >= min_gap and row[best] != row[worst]:
            pairs.append(PreferencePair(chosen=row[best], rejected=row[worst], prompt=prompt))
    return pairs
