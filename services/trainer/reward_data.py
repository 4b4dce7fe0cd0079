"""Token ids for reward-model pairs, the held-out split, and the pairwise collator."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import torch
from transformers import PreTrainedTokenizerBase

from raftflow.conversation import ResolvedFormat, Span, adds_special_tokens, render_pair
from raftflow.data import PreferencePair
from raftflow.encoding import Encoder

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
    """Each answer rendered with its prompt and truncated exactly as the rewarder renders and truncates
    an ``inputs`` pair (raftflow.conversation, raftflow.encoding), so the model learns to score the
    text it will be asked to score. A long text loses the start of its prompt first; the special
    tokens at either end stay, which matters for encoders: BERT's classifier reads [CLS], and a plain
    "last max_length tokens" cut dropped it from every long text (half of the hh profile's pairs)."""
    encoder = Encoder(tokenizer, max_length, ["input_ids"])
    special = adds_special_tokens(prompt_format)

    def encoded(answers: list[str]) -> list[list[int]]:
        rendered = [_rendered(p, a, tokenizer, prompt_format) for p, a in zip(pairs, answers, strict=True)]
        texts = [text for text, _ in rendered]
        spans = [span for _, span in rendered]
        return [e.features["input_ids"] for e in encoder.encode(texts, spans, add_special_tokens=special)]

    chosen = encoded([p.chosen for p in pairs])
    rejected = encoded([p.rejected for p in pairs])
    return [{"chosen_ids": c, "rejected_ids": r} for c, r in zip(chosen, rejected, strict=True)]


def _rendered(
    pair: PreferencePair, answer: str, tokenizer: PreTrainedTokenizerBase, prompt_format: ResolvedFormat
) -> tuple[str, Span | None]:
    """The text scored for one answer and the span truncation may cut first: rendered with the pair's
    prompt, or the answer whole (no prompt span: the oldest tokens go first)."""
    if pair.prompt is None:
        return answer, None
    rendered = render_pair(pair.prompt, answer, prompt_format, tokenizer)
    return rendered.text, rendered.prompt_span


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
