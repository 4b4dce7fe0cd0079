"""Tokenize texts for a reward model, truncating explicitly when one is too long.

A reward model reads the end of the text (GPT-style classifiers score the last token), and what it
judges is the response, so truncation removes the *oldest* tokens: first the start of the prompt, and
only when the prompt is gone, the start of what remains (template header, then the start of the
response). Special tokens the tokenizer adds at either end (BOS, CLS/SEP) are always kept. Without a
known prompt span (raw ``texts``) the same rule reduces to keeping the last ``max_length`` tokens.

Untruncated items are encoded exactly as ``tokenizer(text)`` would, so a direct forward pass of the
model over the same text gives the same score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raftflow.conversation import Span

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MAX_LENGTH_KEY = "raftflow_max_length"
"""config.json key where a reward-model job records the tokens per text it trained on: the rewarder
scores with the same limit by default, so it never reads more context than the model learned from."""


def trained_max_length(config: object) -> int | None:
    """The token limit a raftflow reward-model job recorded in ``config``, or None."""
    value = getattr(config, MAX_LENGTH_KEY, None)
    return value if isinstance(value, int) and value > 0 else None


@dataclass(frozen=True)
class Encoded:
    features: dict[str, list[int]]  # model inputs except the attention mask (built when padding)
    truncated: bool

    def __len__(self) -> int:
        return len(self.features["input_ids"])


class Encoder:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, input_names: Sequence[str]):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.input_names = [name for name in input_names if name != "attention_mask"]

    def encode(
        self, texts: list[str], prompt_spans: Sequence[Span | None], add_special_tokens: bool
    ) -> list[Encoded]:
        batch = self.tokenizer(texts, add_special_tokens=add_special_tokens, return_attention_mask=False)
        encoded = []
        for index, text in enumerate(texts):
            features = {name: list(batch[name][index]) for name in self.input_names if name in batch}
            if len(features["input_ids"]) <= self.max_length:
                encoded.append(Encoded(features, truncated=False))
            else:
                encoded.append(self._truncate(text, prompt_spans[index], add_special_tokens))
        return encoded

    def _truncate(self, text: str, prompt_span: Span | None, add_special_tokens: bool) -> Encoded:
        fast = bool(getattr(self.tokenizer, "is_fast", False))
        enc = self.tokenizer(
            text,
            add_special_tokens=add_special_tokens,
            return_attention_mask=False,
            return_special_tokens_mask=True,
            return_offsets_mapping=fast,  # slow tokenizers have no offsets: the prompt span goes unused
        )
        ids = enc["input_ids"]
        offsets = enc["offset_mapping"] if fast else None
        keep = kept_positions(
            len(ids), self.max_length, enc["special_tokens_mask"], offsets, prompt_span if fast else None
        )
        features = {name: [enc[name][i] for i in keep] for name in self.input_names if name in enc}
        return Encoded(features, truncated=True)


def kept_positions(
    length: int,
    max_length: int,
    special_mask: Sequence[int],
    offsets: Sequence[tuple[int, int]] | None,
    prompt_span: Span | None,
) -> list[int]:
    """Token positions to keep, in order: drop prompt tokens from the left, then body tokens from the
    left, never the special tokens at either end (unless they alone exceed ``max_length``)."""
    excess = length - max_length
    if excess <= 0:
        return list(range(length))
    lead = _run_length(special_mask)
    trail = _run_length(list(reversed(special_mask))) if lead < length else 0
    body = range(lead, length - trail)

    def in_prompt(i: int) -> bool:
        # A token reaching into the prompt from before it (byte-level BPE glues the template's space to
        # the first word) is prompt; one reaching past its end is template/response and stays.
        if prompt_span is None or offsets is None:
            return False
        start, end = offsets[i]
        return end > start and end > prompt_span[0] and start < prompt_span[1] and end <= prompt_span[1]

    prompt = [i for i in body if in_prompt(i)]
    rest = [i for i in body if not in_prompt(i)]
    dropped = set((prompt + rest)[:excess])
    keep = [i for i in range(length) if i not in dropped]
    return keep[-max_length:]


def _run_length(flags: Sequence[int]) -> int:
    count = 0
    for flag in flags:
        if not flag:
            break
        count += 1
    return count
