"""A verifiable format reward: 1.0 for a usable response, 0.0 for a degenerate one.

It applies the same rule RAFT selection uses to exclude samples (empty, too short, a repetition loop;
:func:`raftflow.selection.degenerate_reason`), so it can serve as a sanity reward, or be reported beside
a learned reward to show how often the policy produces text that selection would throw away.
"""

from __future__ import annotations

from raftflow.schemas.reward import RewardItem
from raftflow.selection import degenerate_reason


def well_formed(items: list[RewardItem]) -> list[float]:
    """1.0 when the response (or the whole text, without a split) passes selection's filter, else 0.0."""
    return [
        0.0 if degenerate_reason(item.response if item.response is not None else item.text) else 1.0
        for item in items
    ]
