"""The iteration metrics on hand-computed inputs."""

from __future__ import annotations

import numpy as np
import pytest

from raftflow.iteration_stats import distinct_n, kl_estimate, reward_table_metrics, text_metrics


def test_distinct_n_counts_unique_ngrams_over_the_set() -> None:
    texts = ["a b a b", "a b c"]
    # unigrams: a b a b a b c -> 3 unique / 7; bigrams: ab ba ab ab bc -> 3 unique / 5
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert distinct_n(["one"], 2) == 0.0


def test_reward_table_metrics() -> None:
    rewards = np.array([[1.0, 3.0], [0.0, -1.0]])
    metrics = reward_table_metrics(rewards)
    assert metrics["on_policy_reward"] == pytest.approx(0.5)
    assert metrics["best_of_k_reward"] == pytest.approx(1.5)
    assert metrics["reward_gap"] == pytest.approx(1.0)
    assert metrics["reward_std"] == pytest.approx(np.std([1, 3, 0, -1]))


def test_text_metrics_and_kl() -> None:
    metrics = text_metrics([["a b", "a c"]], [[2, 4]])
    assert metrics["mean_length"] == 3.0
    assert metrics["distinct_2"] == 1.0
    assert kl_estimate([-1.0, -2.0], [-1.5, -2.5]) == pytest.approx(0.5)
