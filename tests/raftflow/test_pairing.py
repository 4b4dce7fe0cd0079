"""Preference pairs from scored samples: each prompt's best against its worst, near-ties, ties and
blank samples left out."""

from __future__ import annotations

from raftflow.data import PreferencePair
from raftflow.pairing import best_worst_pairs


def test_each_prompt_pairs_its_gold_best_against_its_gold_worst() -> None:
    pairs = best_worst_pairs(
        ["a", "b"],
        [[" ok", " great", " awful", " fine"], [" x", " y", " z", " w"]],
        [[0.1, 0.9, -0.7, 0.2], [0.0, 0.5, 0.1, -0.4]],
        min_gap=0.3,
    )
    assert pairs == [
        PreferencePair(chosen=" great", rejected=" awful", prompt="a"),
        PreferencePair(chosen=" y", rejected=" w", prompt="b"),
    ]


def test_near_ties_and_identical_samples_give_no_pair() -> None:
    pairs = best_worst_pairs(
        ["tie", "same", "kept"],
        [[" a", " b"], [" s", " s"], [" good", " bad"]],
        [[0.0, 0.29], [0.8, 0.0], [0.3, 0.0]],
        min_gap=0.3,
    )
    # 0.29 apart is a near-tie; two identical texts have no preferred side whatever their scores; a
    # gap of exactly min_gap counts.
    assert pairs == [PreferencePair(chosen=" good", rejected=" bad", prompt="kept")]


def test_blank_samples_are_never_a_side() -> None:
    pairs = best_worst_pairs(
        ["a", "b"],
        [[" nice", "", " bad", "  "], [" lovely", ""]],
        [[0.6, -0.9, -0.2, -0.9], [0.8, -0.5]],
        min_gap=0.3,
    )
    # "a": the blank ones score lowest but the worst real reply is " bad"; "b" has one real reply only.
    assert pairs == [PreferencePair(chosen=" nice", rejected=" bad", prompt="a")]


def test_a_tie_gives_no_pair_even_with_no_minimum_gap() -> None:
    pairs = best_worst_pairs(["tie", "kept"], [[" a", " b"], [" c", " d"]], [[0.5, 0.5], [0.5, 0.4]], 0.0)
    assert pairs == [PreferencePair(chosen=" c", rejected=" d", prompt="kept")]
