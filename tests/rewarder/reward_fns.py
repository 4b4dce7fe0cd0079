"""Reward functions used only by the tests, imported by the rewarder subprocess as
``tests.rewarder.reward_fns:NAME`` (the service runs from the repository root)."""

from __future__ import annotations

from raftflow.rewards.sentiment import vader_positivity
from raftflow.schemas.reward import RewardItem


def explode_on_boom(items: list[RewardItem]) -> list[float]:
    """VADER, except that any text containing BOOM raises: a buggy reward function."""
    if any("BOOM" in item.text for item in items):
        raise RuntimeError("BOOM in the input")
    return vader_positivity(items)


def not_a_number(items: list[RewardItem]) -> list[float]:
    return [float("nan") for _ in items]
