"""One loaded checkpoint: model, tokenizer and the facts about them that generation needs.

Immutable on purpose: a request takes a reference to the current LoadedModel when it starts and uses
it to the end, so a hot reload (which swaps the engine's reference) never mixes two checkpoints within
one request, and the old weights are freed when the last request holding them finishes.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raftflow.conversation import PromptFormat, RenderedPair, ResolvedFormat, recorded_format
from raftflow.modeling import (
    checkpoint_version,
    default_dtype,
    load_causal_lm,
    load_tokenizer,
    lora_adapter_base,
)
from services.generator.engine.prompt_codec import PromptCodec

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
    keeps_logits: bool = False
    """Whether the model's forward takes ``logits_to_keep`` (decoding.score_batch projects only the
    response positions with it; without, it computes every position's logits and slices)."""

    @property
    def vocab_size(self) -> int:
        """Token ids the model has embeddings for: a given id at or above it cannot be scored."""
        return int(self.model.get_input_embeddings().num_embeddings)

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

    @property
    def codec(self) -> PromptCodec:
        """Rendering and tokenizing prompts, shared with the vLLM engine (prompt_codec)."""
        return PromptCodec(self.tokenizer, recorded_format(self.model.config))

    def resolve(self, fmt: PromptFormat) -> ResolvedFormat:
        return self.codec.resolve(fmt)

    def render(self, prompts: list[str], fmt: PromptFormat) -> tuple[ResolvedFormat, list[str]]:
        return self.codec.render(prompts, fmt)

    def render_pairs(
        self, prompts: list[str], responses: list[str], fmt: PromptFormat
    ) -> tuple[ResolvedFormat, list[RenderedPair]]:
        return self.codec.render_pairs(prompts, responses, fmt)

    def encode(
        self, texts: list[str], fmt: ResolvedFormat = "raw", truncate: int | None = None
    ) -> list[list[int]]:
        return self.codec.encode(texts, fmt, truncate)


def load_model(
    path: str, device: torch.device, trust_remote_code: bool = False, shared_prefill: bool = True
) -> LoadedModel:
    """Load ``path`` fully (weights on the device, tokenizer ready) before anyone can see it."""
    if _looks_local(path) and not Path(path).is_dir():
        # Otherwise from_pretrained treats it as a hub id and complains about the repo id's format.
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    # A LoRA adapter saved without its tokenizer uses its base's.
    adapter_base = lora_adapter_base(path)
    has_tokenizer = (Path(path) / "tokenizer_config.json").is_file()
    tokenizer_source = adapter_base if adapter_base and not has_tokenizer else path
    tokenizer = load_tokenizer(tokenizer_source, padding_side="left", trust_remote_code=trust_remote_code)
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
        keeps_logits="logits_to_keep" in inspect.signature(model.forward).parameters,
    )


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or Path(path).exists()


def _context_length(model: Any, tokenizer: Any) -> int | None:
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    known = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < _NO_LIMIT]
    return min(known) if known else None
