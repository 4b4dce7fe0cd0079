"""One loaded checkpoint: model, tokenizer and the facts about them that generation needs.

Immutable on purpose: a request takes a reference to the current LoadedModel when it starts and uses
it to the end, so a hot reload (which swaps the engine's reference) never mixes two checkpoints within
one request, and the old weights are freed when the last request holding them finishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raftflow.conversation import (
    PromptFormat,
    RenderedPair,
    ResolvedFormat,
    encode_prompt,
    recorded_format,
    render_pair,
    render_prompt,
    resolve_format,
)
from raftflow.modeling import checkpoint_version, default_dtype, load_causal_lm, load_tokenizer

if TYPE_CHECKING:
    import torch

# Tokenizers without a real limit report model_max_length as a huge sentinel (int(1e30)).
_NO_LIMIT = 10**9


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # transformers.PreTrainedModel; Any keeps torch out of import time
    tokenizer: Any  # transformers.PreTrainedTokenizerBase, left padding
    checkpoint: str
    version: str
    loaded_at: float
    context_length: int | None
    eos_token_ids: frozenset[int]
    pad_token_id: int
    shared_prefill: bool = False
    """Whether n samples of a prompt share one prefill (see decoding.prefill_once)."""

    @property
    def name(self) -> str:
        """What the ``model`` field of a response says: the checkpoint and, for a local one, its version."""
        return self.checkpoint if self.version == self.checkpoint else f"{self.checkpoint}@{self.version}"

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype_name(self) -> str:
        return str(self.model.dtype).removeprefix("torch.")

    def resolve(self, fmt: PromptFormat) -> ResolvedFormat:
        """``fmt`` for this checkpoint (``auto``: what its training recorded, its template, else hh);
        ValueError when the format needs a chat template the tokenizer lacks."""
        return resolve_format(fmt, self.tokenizer, recorded_format(self.model.config))

    def render(self, prompts: list[str], fmt: PromptFormat) -> tuple[ResolvedFormat, list[str]]:
        """The texts the model is conditioned on, through the one conversation contract."""
        resolved = self.resolve(fmt)
        return resolved, [render_prompt(prompt, resolved, self.tokenizer) for prompt in prompts]

    def render_pairs(
        self, prompts: list[str], responses: list[str], fmt: PromptFormat
    ) -> tuple[ResolvedFormat, list[RenderedPair]]:
        resolved = self.resolve(fmt)
        return resolved, [
            render_pair(p, r, resolved, self.tokenizer) for p, r in zip(prompts, responses, strict=True)
        ]

    def encode(
        self, texts: list[str], fmt: ResolvedFormat = "raw", truncate: int | None = None
    ) -> list[list[int]]:
        """Token ids per rendered prompt, unpadded (padding is per batch, to that batch's longest
        prompt); special tokens as the trainer adds them (none after a chat template)."""
        ids = [encode_prompt(self.tokenizer, text, fmt) for text in texts]
        return [row[-truncate:] for row in ids] if truncate else ids


def load_model(
    path: str, device: torch.device, trust_remote_code: bool = False, shared_prefill: bool = True
) -> LoadedModel:
    """Load ``path`` fully (weights on the device, tokenizer ready) before anyone can see it."""
    if _looks_local(path) and not Path(path).is_dir():
        # Otherwise from_pretrained treats it as a hub id and complains about the repo id's format.
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    tokenizer = load_tokenizer(path, padding_side="left", trust_remote_code=trust_remote_code)
    model = load_causal_lm(
        path, device=device, dtype=default_dtype(device), trust_remote_code=trust_remote_code
    )
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        checkpoint=path,
        version=checkpoint_version(path),
        loaded_at=time.time(),
        context_length=_context_length(model, tokenizer),
        eos_token_ids=frozenset(eos_ids),
        pad_token_id=tokenizer.pad_token_id,
        # Stateful (Mamba-like) and encoder-decoder models keep caches DynamicCache cannot hold.
        shared_prefill=shared_prefill
        and not model.config.is_encoder_decoder
        and type(model)._supports_default_dynamic_cache(),
    )


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or Path(path).exists()


def _context_length(model: Any, tokenizer: Any) -> int | None:
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    known = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < _NO_LIMIT]
    return min(known) if known else None
