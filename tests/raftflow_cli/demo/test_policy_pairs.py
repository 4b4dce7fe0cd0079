"""The demo's reward-model pairs: corpus and on-policy pairs shuffled together reproducibly (the pairing
itself is tested in tests/raftflow/test_pairing.py)."""

from __future__ import annotations

from raftflow.data import PreferencePair
from raftflow_cli.demo.policy_pairs import mixed_pairs


def test_mixed_pairs_keep_every_pair_and_shuffle_by_seed() -> None:
    corpus = [PreferencePair(f"c{i}", f"r{i}", "p") for i in range(20)]
    policy = [PreferencePair(f"pc{i}", f"pr{i}", "q") for i in range(20)]
    mixed = mixed_pairs(corpus, policy, seed=3)
    assert sorted(mixed, key=str) == sorted(corpus + policy, key=str)
    assert mixed == mixed_pairs(corpus, policy, seed=3)
    assert mixed != mixed_pairs(corpus, policy, seed=4)
    assert mixed[:20] != corpus  # interleaved, so a held-out split draws from both kinds
