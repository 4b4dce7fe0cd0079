"""On-policy pairs for the reward model: the gold-best sample against the gold-worst, near-ties left
out, and both kinds of pairs shuffled together reproducibly."""

from __future__ import annotations

from raftflow.data import PreferencePair
from raftflow_cli.demo.policy_pairs import best_worst_pairs, mixed_pairs


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


def test_mixed_pairs_keep_every_pair_and_shuffle_by_seed() -> None:
    corpus = [PreferencePair(f"c{i}", f"r{i}", "p") for i in range(20)]
    policy = [PreferencePair(f"pc{i}", f"pr{i}", "q") for i in range(20)]
    mixed = mixed_pairs(corpus, policy, seed=3)
    assert sorted(mixed, key=str) == sorted(corpus + policy, key=str)
    assert mixed == mixed_pairs(corpus, policy, seed=3)
    assert mixed != mixed_pairs(corpus, policy, seed=4)
    assert mixed[:20] != corpus  # interleaved, so a held-out split draws from both kinds
