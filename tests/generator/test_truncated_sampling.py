"""top_k and top_p change what is sampled as defined, not only within their ranges: every sampled token
lies inside the k most likely (top_k) or the nucleus (top_p) of the model's own next-token
distribution, checked against a direct forward pass of the tiny policy on the ids the server sampled,
and top_k=1 is greedy decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raftflow.modeling import load_causal_lm
from tests.generator.conftest import Generator

PROMPTS = ["the cat", "once upon a time", "a dog ran to", "in the morning"]


@pytest.fixture(scope="module")
def policy(tiny_models: dict[str, Path]):
    return load_causal_lm(str(tiny_models["policy"]), device="cpu")


def sampled(generator: Generator, **params: object) -> list[dict]:
    body = {"prompt": PROMPTS, "n": 4, "max_tokens": 12, "seed": 3, "return_token_ids": True, **params}
    return generator.complete(**body)["choices"]


def ranks_and_mass(policy, prompt_ids: list[int], ids: list[int]) -> list[tuple[int, float]]:
    """Per sampled token: its rank in the model's next-token distribution (0 = most likely) and the
    probability mass of the tokens ranked above it (temperature 1)."""
    with torch.no_grad():
        logits = policy(torch.tensor([prompt_ids + ids])).logits[0]
    out = []
    for position, token in enumerate(ids):
        probs = torch.softmax(logits[len(prompt_ids) + position - 1].double(), dim=-1)
        above = probs > probs[token]
        out.append((int(above.sum()), float(probs[above].sum())))
    return out


def all_stats(policy, choices: list[dict]) -> list[tuple[int, float]]:
    return [s for c in choices for s in ranks_and_mass(policy, c["prompt_token_ids"], c["token_ids"])]


def test_top_k_one_is_greedy(generator: Generator) -> None:
    greedy = generator.complete(prompt=PROMPTS, n=1, max_tokens=12, temperature=0)["choices"]
    top1 = generator.complete(prompt=PROMPTS, n=1, max_tokens=12, top_k=1, seed=11)["choices"]
    assert [c["text"] for c in top1] == [c["text"] for c in greedy]


def test_every_token_sampled_with_top_k_is_among_the_k_most_likely(generator: Generator, policy) -> None:
    choices = sampled(generator, top_k=3)
    ranks = [rank for rank, _ in all_stats(policy, choices)]
    assert len(ranks) >= 4 * 4 * 2  # enough tokens for the bound to mean something
    assert max(ranks) <= 2
    assert len(set(ranks)) > 1  # it samples: not always the top token
    # Without top_k the same seeds reach further down the distribution.
    free = sampled(generator)
    assert max(rank for rank, _ in all_stats(policy, free)) > 2


def test_every_token_sampled_with_top_p_is_inside_the_nucleus(generator: Generator, policy) -> None:
    """The nucleus of p is the smallest set of most likely tokens holding mass >= p: a token belongs to
    it when the mass ranked above it is below p."""
    top_p = 0.5
    choices = sampled(generator, top_p=top_p)
    masses = [mass for _, mass in all_stats(policy, choices)]
    assert max(masses) < top_p + 1e-6
    free = sampled(generator)
    assert max(mass for _, mass in all_stats(policy, free)) > top_p
