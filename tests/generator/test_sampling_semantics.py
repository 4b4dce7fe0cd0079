"""Seed derivation, min_tokens draws and stop-string cutting: the contract shared by server and clients."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raftflow.schemas.generation import SamplingParams, cut_at_stop, draw_max_tokens
from raftflow.seeds import MAX_SEED, derive_seed


def test_derived_seeds_are_stable_distinct_and_in_range() -> None:
    assert derive_seed(7, 0) == derive_seed(7, 0)
    seeds = {derive_seed(seed, i) for seed in range(20) for i in range(20)}
    assert len(seeds) == 400  # seed + i would collide (seed 1, i 0 == seed 0, i 1)
    assert all(0 <= s <= MAX_SEED for s in seeds)
    assert derive_seed(3, 1, 2) != derive_seed(3, 2, 1)


def test_max_tokens_drawn_uniformly_within_bounds() -> None:
    draws = [draw_max_tokens(4, 9, seed) for seed in range(600)]
    assert set(draws) == set(range(4, 10))  # both ends reachable
    assert draw_max_tokens(4, 9, 123) == draw_max_tokens(4, 9, 123)
    assert draw_max_tokens(None, 9, 5) == 9


def test_cut_at_the_earliest_stop() -> None:
    assert cut_at_stop("ab\ncd###ef\n", ["###", "\n"]) == ("ab", "\n")
    assert cut_at_stop("abc", ["x"]) == ("abc", None)
    assert cut_at_stop("abc", None) == ("abc", None)


def test_sampling_params_limits() -> None:
    assert SamplingParams(stop="\n").stop == ["\n"]
    with pytest.raises(ValidationError, match="min_tokens"):
        SamplingParams(max_tokens=4, min_tokens=5)
    with pytest.raises(ValidationError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValidationError, match="seed"):
        SamplingParams(seed=-1)
