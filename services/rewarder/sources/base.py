"""What every reward source offers the scoring core: prepare items (tokenize, truncate) on the event
loop's side, score prepared batches in the scoring thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from raftflow.conversation import Span
from raftflow.schemas.reward import RewardItem

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from raftflow.encoding import Encoder


@dataclass(frozen=True)
class Prepared:
    """One item ready for the batcher. ``length`` is the sort key that groups similar lengths into a
    batch (tokens for a model, characters for a function)."""

    item: RewardItem
    length: int
    truncated: bool = False
    features: dict[str, list[int]] = field(default_factory=dict)


class ItemRejected(ValueError):
    """An item this source cannot score (e.g. a text that encodes to no tokens): the request's fault,
    reported as a 422 naming the item."""

    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(message)


def encode_items(
    encoder: Encoder, items: list[RewardItem], prompt_spans: list[Span | None], add_special_tokens: bool
) -> list[Prepared]:
    """Items as token features for a model source (in process or vLLM); an item that encodes to no
    tokens is the request's fault."""
    encoded = encoder.encode(
        [item.text for item in items], prompt_spans, add_special_tokens=add_special_tokens
    )
    prepared = []
    for index, (item, enc) in enumerate(zip(items, encoded, strict=True)):
        if len(enc) == 0:
            raise ItemRejected(index, "encodes to zero tokens: a reward model has nothing to score")
        prepared.append(Prepared(item=item, length=len(enc), truncated=enc.truncated, features=enc.features))
    return prepared


class RewardSourceError(RuntimeError):
    """The model or function failed, or returned something that is not one finite float per item: the
    service's fault (a 500); the service itself keeps running."""


class RewardSource(Protocol):
    kind: Literal["model", "function"]
    name: str
    version: str
    tokenizer: PreTrainedTokenizerBase | None
    config: Any
    """The model's config (where a training job recorded its prompt format), or None for functions."""
    max_length: int | None
    device: str | None
    dtype: str | None

    def prepare(
        self, items: list[RewardItem], prompt_spans: list[Span | None], template: bool
    ) -> list[Prepared]:
        """Encode items. ``template``: the texts were rendered by a chat template (which writes its own
        special tokens). Raises :class:`ItemRejected` for an item that cannot be scored."""
        ...

    def score(self, batch: list[Prepared]) -> list[float]:
        """Blocking; runs in the scoring thread. One float per item, same order."""
        ...
