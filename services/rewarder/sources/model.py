"""A Hugging Face sequence classifier with one output as the reward source.

Batch-independence is the point of this module: a text's score must not depend on what it was batched
with (a known failure of reward servers elsewhere). Batches are right-padded with the id the model
itself treats as padding (``config.pad_token_id``: classifiers such as GPT-2's score the last token that
is not that id) and carry an attention mask, so padding is invisible to every real token. The model
gets every input the tokenizer produces and the model accepts (``token_type_ids`` too), exactly as
``model(**tokenizer(text))`` would.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Literal

from raftflow.conversation import Span
from raftflow.encoding import Encoder, trained_max_length
from raftflow.modeling import (
    checkpoint_version,
    default_dtype,
    load_reward_model,
    load_tokenizer,
    resolve_device,
)
from raftflow.schemas.reward import RewardItem
from services.rewarder.settings import RewarderSettings
from services.rewarder.sources.base import Prepared, encode_items

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Tokenizers report "unknown" context length as a huge sentinel (1e30); anything above this is that.
_NO_TOKENIZER_LIMIT = 10**7
DEFAULT_MAX_LENGTH = 2048


class ModelSource:
    kind: Literal["model"] = "model"

    def __init__(self, settings: RewarderSettings):
        assert settings.model is not None
        self.name = settings.model
        self.version = checkpoint_version(settings.model)
        self.add_special_tokens = settings.add_special_tokens
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(
            settings.model, padding_side="right", trust_remote_code=settings.trust_remote_code
        )
        device = resolve_device(settings.device)
        dtype = _torch_dtype(settings.dtype) or default_dtype(device)
        self.model: PreTrainedModel = load_reward_model(
            settings.model,
            device=device,
            dtype=dtype,
            trust_remote_code=settings.trust_remote_code,
            pad_token_id=None if _config_pad_id(settings) is not None else self.tokenizer.pad_token_id,
        )
        # Scoring is one forward per batch, never decoding: a causal backbone would otherwise build a
        # key/value cache on every forward only to drop it.
        self.model.config.use_cache = False
        self.config = self.model.config
        self.device = str(device)
        self.dtype = str(dtype).removeprefix("torch.")
        self.max_length = resolve_max_length(settings.max_length, self.model, self.tokenizer)
        accepted = inspect.signature(self.model.forward).parameters
        names = [name for name in self.tokenizer.model_input_names if name in accepted]
        self.encoder = Encoder(self.tokenizer, self.max_length, names)
        self.pad_values = {
            "input_ids": self.model.config.pad_token_id,
            "token_type_ids": self.tokenizer.pad_token_type_id,
        }
        log.info(
            "reward model %s: %s on %s, max_length %d, pad id %s, inputs %s",
            self.name, self.dtype, self.device, self.max_length, self.pad_values["input_ids"], names,
        )  # fmt: skip

    def prepare(
        self, items: list[RewardItem], prompt_spans: list[Span | None], template: bool
    ) -> list[Prepared]:
        return encode_items(self.encoder, items, prompt_spans, self.add_special_tokens and not template)

    def score(self, batch: list[Prepared]) -> list[float]:
        import torch

        with torch.inference_mode():
            logits = self.model(**self._pad(batch)).logits
        return logits[:, 0].float().cpu().tolist()

    def _pad(self, batch: list[Prepared]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest item; the attention mask marks the real tokens."""
        import torch

        width = max(p.length for p in batch)
        inputs = {
            name: torch.full((len(batch), width), self.pad_values.get(name, 0), dtype=torch.long)
            for name in batch[0].features
        }
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prepared in enumerate(batch):
            for name, values in prepared.features.items():
                inputs[name][row, : len(values)] = torch.tensor(values, dtype=torch.long)
            mask[row, : prepared.length] = 1
        inputs["attention_mask"] = mask
        return {name: tensor.to(self.model.device) for name, tensor in inputs.items()}


def resolve_max_length(
    requested: int | None, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> int:
    """The token limit per item: the setting, checked against what the model can take; unset, the
    length a raftflow reward-model job trained the checkpoint on (its ``raftflow_max_length``), else
    the model's context."""
    limits = [
        value
        for value in (
            getattr(model.config, "max_position_embeddings", None),
            getattr(model.config, "n_positions", None),
            tokenizer.model_max_length if tokenizer.model_max_length < _NO_TOKENIZER_LIMIT else None,
        )
        if isinstance(value, int) and value > 0
    ]
    context = min(limits) if limits else None
    if requested is None:
        trained = trained_max_length(model.config)
        if trained is not None:
            return min(trained, context) if context else trained
        return context or DEFAULT_MAX_LENGTH
    if context is not None and requested > context:
        raise ValueError(f"max_length={requested} exceeds the model's context length {context}")
    return requested


def _config_pad_id(settings: RewarderSettings) -> int | None:
    """The checkpoint's own pad id, read before loading: when set, it is what the model skips as
    padding, so batches must pad with it (the tokenizer's pad id is only the fallback)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code)
    return getattr(config, "pad_token_id", None)


def _torch_dtype(name: str) -> torch.dtype | None:
    import torch

    return None if name == "auto" else getattr(torch, name)
