"""A reward model served by a vLLM pooling server as the reward source (``REWARDER_VLLM_URL``).

For reward models too large for the rewarder's own process, or a GPU already running vLLM: start
``vllm serve MODEL --runner pooling --convert classify`` and point the rewarder at it. The rewarder
keeps its API, limits, batching and calibration, and still renders and tokenizes every item itself
(with ``REWARDER_MODEL``'s tokenizer, the same checkpoint vLLM serves): vLLM receives token ids, so
the text formatting, special tokens and prompt-first truncation are exactly the in-process model's.
Scores are the raw classifier logits, ``POST /classify {"input": [[ids]], "use_activation": false}``
then ``data[i].probs[-1]``, the way verl scores sequence-classification reward models through vLLM.
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace
from typing import Any, Literal

import httpx

from raftflow.conversation import Span
from raftflow.encoding import Encoder
from raftflow.modeling import checkpoint_version, load_tokenizer
from raftflow.schemas.reward import RewardItem
from services.rewarder.settings import RewarderSettings
from services.rewarder.sources.base import Prepared, RewardSourceError, encode_items
from services.rewarder.sources.model import resolve_max_length

log = logging.getLogger(__name__)


class VLLMPoolingSource:
    kind: Literal["model"] = "model"

    def __init__(self, settings: RewarderSettings):
        from transformers import AutoConfig

        assert settings.model is not None and settings.vllm_url is not None
        self.name = settings.model
        self.version = checkpoint_version(settings.model)
        self.add_special_tokens = settings.add_special_tokens
        self.tokenizer = load_tokenizer(
            settings.model, padding_side="right", trust_remote_code=settings.trust_remote_code
        )
        self.config = AutoConfig.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code)
        self.device = "vllm"
        self.dtype = None
        self.max_length = resolve_max_length(
            settings.max_length, SimpleNamespace(config=self.config), self.tokenizer
        )
        self.encoder = Encoder(self.tokenizer, self.max_length, ["input_ids"])
        headers = {"Authorization": f"Bearer {settings.vllm_api_key}"} if settings.vllm_api_key else {}
        self.url = settings.vllm_url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=settings.vllm_timeout)
        self.served_name = settings.vllm_model_name or self._served_model()
        log.info("reward model %s scored by vLLM at %s (as %s)", self.name, self.url, self.served_name)

    def prepare(
        self, items: list[RewardItem], prompt_spans: list[Span | None], template: bool
    ) -> list[Prepared]:
        return encode_items(self.encoder, items, prompt_spans, self.add_special_tokens and not template)

    def score(self, batch: list[Prepared]) -> list[float]:
        body = {
            "model": self.served_name,
            "input": [prepared.features["input_ids"] for prepared in batch],
            "use_activation": False,
        }
        try:
            response = self.http.post("/classify", json=body)
            response.raise_for_status()
            data: list[dict[str, Any]] = sorted(response.json()["data"], key=lambda row: row["index"])
            scores = [float(row["probs"][-1]) for row in data]
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            raise RewardSourceError(f"vLLM at {self.url} did not score the batch: {exc}") from exc
        if len(scores) != len(batch) or not all(math.isfinite(s) for s in scores):
            raise RewardSourceError(
                f"vLLM returned {len(scores)} scores for {len(batch)} items, or a non-finite one"
            )
        return scores

    def _served_model(self) -> str:
        try:
            response = self.http.get("/v1/models")
            response.raise_for_status()
            return str(response.json()["data"][0]["id"])
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise RuntimeError(f"no model served by vLLM at {self.url}: {exc}") from exc
