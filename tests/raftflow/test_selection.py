"""Local and global selection on a hand-checked reward table."""

from __future__ import annotations

import numpy as np
import pytest

from raftflow.selection import degenerate_reason, select_global, select_local, valid_mask

SAMPLES = [
    ["a fine answer", "", "another answer", "ok then"],  # sample 1 is empty
    ["x", "yes indeed", "sure thing", "no way"],  # sample 0 is too short
    ["", " ", "", ""],  # every sample degenerate: prompt dropped
]
REWARDS = np.array(
    [
        [0.1, 9.0, 0.7, 0.3],  # the empty sample has the top reward: it must not win
        [5.0, 0.2, 0.4, 0.4],  # tie between 2 and 3: the earlier one wins
        [1.0, 1.0, 1.0, 1.0],
    ]
)


def test_degenerate_reasons() -> None:
    assert degenerate_reason("") == "empty"
    assert degenerate_reason("   ") == "empty"
    assert degenerate_reason("x") == "too_short"
    assert degenerate_reason("great " * 10) == "repetitive"
    assert degenerate_reason("a perfectly normal sentence with enough different words") is None


def test_local_selection_picks_best_valid_sample_per_prompt() -> None:
    selection = select_local(REWARDS, valid_mask(SAMPLES))
    assert selection.kept == [(0, 2), (1, 2)]
    assert selection.discarded_samples == 1 + 1 + 4
    assert selection.dropped_prompts == 1


def test_global_selection_takes_top_fraction_of_all_valid_samples() -> None:
    valid = valid_mask(SAMPLES)  # 6 valid samples
    selection = select_global(REWARDS, valid, fraction=0.5)  # ceil(0.5 * 6) = 3 samples
    # Valid rewards: (0,0)=0.1 (0,2)=0.7 (0,3)=0.3 (1,1)=0.2 (1,2)=0.4 (1,3)=0.4 -> top 3: 0.7, 0.4, 0.4
    assert selection.kept == [(0, 2), (1, 2), (1, 3)]
    assert selection.dropped_prompts == 1


def test_non_finite_rewards_are_never_selected() -> None:
    rewards = np.array([[np.nan, 0.0, np.inf * -1]])
    selection = select_local(rewards, np.ones_like(rewards, dtype=bool))
    assert selection.kept == [(0, 1)]


def test_bad_shapes_and_fractions_are_rejected() -> None:
    with pytest.raises(ValueError, match="same P x K"):
        select_local(np.zeros((2, 3)), np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="fraction"):
        select_global(np.zeros((1, 2)), np.ones((1, 2), dtype=bool), fraction=0.0)
