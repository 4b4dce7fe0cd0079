"""Split P prompts x r rows into as few ``model.generate`` calls as the token budget allows.

A generate call costs memory in proportion to rows x (padded prompt length + new tokens): the KV cache
and the logits. Prompts are taken longest first, so each call's padded width is set by its first
prompt and the short prompts that follow waste little padding. A prompt whose r rows alone exceed the
budget is split into several calls over its rows (never fewer than one row per call: the budget bounds
batching, it does not reject prompts; the context-length check does that).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Batch:
    """One generate call: ``rows`` samples of each prompt in ``prompts``, which are samples
    ``first_row .. first_row + rows - 1`` of those prompts."""

    prompts: tuple[int, ...]
    rows: int
    first_row: int = 0

    @property
    def size(self) -> int:
        return len(self.prompts) * self.rows


def plan_batches(
    prompt_lengths: list[int], rows_per_prompt: int, max_new_tokens: int, token_budget: int
) -> list[Batch]:
    order = sorted(range(len(prompt_lengths)), key=lambda i: (-prompt_lengths[i], i))
    batches: list[Batch] = []
    current: list[int] = []
    width = 0  # padded prompt length + new tokens of the batch being filled (its first, longest prompt)

    def flush() -> None:
        if current:
            batches.append(Batch(tuple(current), rows_per_prompt))
            current.clear()

    for index in order:
        own_width = prompt_lengths[index] + max_new_tokens
        if rows_per_prompt * own_width > token_budget:
            flush()
            per_call = max(1, token_budget // own_width)
            for first in range(0, rows_per_prompt, per_call):
                batches.append(Batch((index,), min(per_call, rows_per_prompt - first), first))
            continue
        if current and (len(current) + 1) * rows_per_prompt * width > token_budget:
            flush()
        if not current:
            width = own_width
        current.append(index)
    flush()
    return batches
