"""Token ids for reward-model pairs, the held-out split, and the pairwise collator."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import torch
from transformers import PreTrainedTokenizerBase

from raftflow.conversation import ResolvedFormat, adds_special_tokens, render_pair
from raftflow.data import PreferencePair

T = TypeVar("T")


class PairFeature(TypedDict):
    chosen_ids: list[int]
    rejected_ids: list[int]


def tokenize_pairs(
    pairs: Sequence[PreferencePair],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    prompt_format: ResolvedFormat = "raw",
) -> list[PairFeature]:
    """Each answer rendered with its prompt exactly as the rewarder renders an ``inputs`` pair
    (raftflow.conversation), so the model learns to score the text it will be asked to score.
    Truncation keeps the END of each text: the classifier scores the last token, and the response
    (where chosen and rejected differ) is at the end."""
    special = adds_special_tokens(prompt_format)
    chosen = tokenizer(
        [pair_text(p, p.chosen, tokenizer, prompt_format) for p in pairs], add_special_tokens=special
    )
    rejected = tokenizer(
        [pair_text(p, p.rejected, tokenizer, prompt_format) for p in pairs], add_special_tokens=special
    )
    chosen, rejected = chosen["input_ids"], rejected["input_ids"]
    return [
        {"chosen_ids": c[-max_length:], "rejected_ids": r[-max_length:]}
        for c, r in zip(chosen, rejected, strict=True)
    ]


def pair_text(
    pair: PreferencePair, answer: str, tokenizer: PreTrainedTokenizerBase, prompt_format: ResolvedFormat
) -> str:
    """The text scored for one answer: rendered with the pair's prompt, or the answer whole."""
    if pair.prompt is None:
        return answer
    return render_pair(pair.prompt, answer, prompt_format, tokenizer).text


def split_holdout(items: Sequence[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, held-out), shuffled by ``seed``. At least one item on each side when ``fraction`` > 0
    (callers check there are two)."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    if fraction <= 0:
        return shuffled, []
    held = min(max(1, round(len(shuffled) * fraction)), len(shuffled) - 1)
    return shuffled[held:], shuffled[:held]


@dataclass(frozen=True)
class PairCollator:
    """One right-padded batch of 2B rows, chosen texts first, so each step is a single forward pass.
    The model's ``config.pad_token_id`` must equal ``pad_token_id``: the classifier finds the last
    real token through it."""

    pad_token_id: int

    def __call__(self, features: Sequence[PairFeature]) -> dict[str, torch.Tensor]:
        rows = [f["chosen_ids"] for f in features] + [f["rejected_ids"] for f in features]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}
