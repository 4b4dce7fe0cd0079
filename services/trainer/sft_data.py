"""Token ids and label masks for SFT.

Each pair is rendered by the one conversation contract (raftflow.conversation.render_pair), then the
rendered prompt and the completion are tokenized separately, exactly as the generator encodes the
prompt it conditions on and appends sampled tokens; EOS is appended unless the completion already ends
a chat-template turn with it (so the model learns to stop). Knowing exactly where the prompt ends lets
the collator mask it; tokenizing the joined string and then re-tokenizing the prompt can disagree at
the boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import torch
from transformers import PreTrainedTokenizerBase

from raftflow.conversation import ResolvedFormat, encode_prompt, render_pair
from raftflow.data import PromptResponse

IGNORE_INDEX = -100  # torch cross-entropy skips these labels


class SFTFeature(TypedDict):
    input_ids: list[int]
    prompt_length: int  # tokens that get no loss (0 when training on the whole text)


def tokenize_sft(
    examples: Sequence[PromptResponse],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    loss_on: Literal["response", "all"],
    prompt_format: ResolvedFormat = "raw",
) -> tuple[list[SFTFeature], int]:
    """Features and the number of examples dropped because truncation left no response token.

    Truncation keeps the start (the prompt and the first response tokens). An example with an empty
    prompt is a plain text: trained on whole, as written, whatever the format."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; SFT appends one so the model learns to stop")
    features: list[SFTFeature] = []
    dropped = 0
    for example in examples:
        prompt_ids, completion_ids = encode_example(example, tokenizer, prompt_format)
        if eos not in completion_ids[-2:]:
            completion_ids = [*completion_ids, eos]
        ids = (prompt_ids + completion_ids)[:max_length]
        prompt_length = 0 if loss_on == "all" else len(prompt_ids)
        if prompt_length >= len(ids):
            dropped += 1
            continue
        features.append({"input_ids": ids, "prompt_length": prompt_length})
    return features, dropped


def encode_example(
    example: PromptResponse, tokenizer: PreTrainedTokenizerBase, prompt_format: ResolvedFormat
) -> tuple[list[int], list[int]]:
    """(rendered prompt ids, completion ids) of one example, EOS not yet appended."""
    if not example.prompt:
        ids = list(tokenizer(example.response, add_special_tokens=True)["input_ids"])
        return [], ids
    pair = render_pair(example.prompt, example.response, prompt_format, tokenizer)
    completion = list(tokenizer(pair.completion, add_special_tokens=False)["input_ids"])
    return encode_prompt(tokenizer, pair.prompt_text, prompt_format), completion


@dataclass(frozen=True)
class SFTCollator:
    """Right-pads a batch. Labels are the input ids where the attention mask is 1 and past the prompt:
    never masked by comparing with the pad id, which equals EOS for most causal LMs and would hide
    the EOS the model must learn."""

    pad_token_id: int

    def __call__(self, features: Sequence[SFTFeature]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        prompt_mask = torch.zeros((len(features), width), dtype=torch.bool)
        for row, feature in enumerate(features):
            ids = feature["input_ids"]
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
            prompt_mask[row, : feature["prompt_length"]] = True
        labels = input_ids.masked_fill((attention_mask == 0) | prompt_mask, IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
