"""The scoring core shared by ``/score`` and ``/get_reward``: format, prepare, batch, normalize.

Routes check request limits and shape answers; everything between a request's items and their scores
happens here, so both endpoints score a given text identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from raftflow.conversation import ResolvedFormat, Span, render_pair
from raftflow.schemas.reward import CalibrationStats, PromptResponse, RewardItem
from services.rewarder.batcher import BatchObserver, DynamicBatcher
from services.rewarder.settings import RewarderSettings
from services.rewarder.sources import Prepared, RewardSource, RewardSourceError


class Scorer:
    def __init__(
        self,
        source: RewardSource,
        style: ResolvedFormat,
        settings: RewarderSettings,
        on_batch: BatchObserver | None = None,
        thread_initializer: Callable[[], None] | None = None,
    ):
        self.source = source
        self.style = style
        self.calibration: CalibrationStats | None = None
        self.batcher: DynamicBatcher[Prepared] = DynamicBatcher(
            self._score_batch,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_s,
            max_batch_tokens=settings.max_batch_tokens if source.kind == "model" else None,
            on_batch=on_batch,
            thread_initializer=thread_initializer,
        )

    async def start(self) -> None:
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    def prepare_pairs(self, pairs: Sequence[PromptResponse]) -> list[Prepared]:
        """Render each pair for the reward model through the conversation contract (a prompt holding
        HH dialogue turns is parsed, never wrapped twice) and encode it (prompt span known: precise
        truncation). Raises ``ItemRejected`` (and template errors, caught by the route) for an
        unusable item."""
        formatted = [render_pair(p.prompt, p.response, self.style, self.source.tokenizer) for p in pairs]
        items = [
            RewardItem(text=f.text, prompt=p.prompt, response=p.response)
            for f, p in zip(formatted, pairs, strict=True)
        ]
        spans = [f.prompt_span for f in formatted]
        return self.source.prepare(items, spans, template=self.style == "chat_template")

    def prepare_texts(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> list[Prepared]:
        """Encode already formatted texts. With ``prompts`` (OpenRLHF's field), a text that starts with
        its prompt is split there: the function sources see the split, and truncation cuts the prompt."""
        items: list[RewardItem] = []
        spans: list[Span | None] = []
        for index, text in enumerate(texts):
            prompt = prompts[index] if prompts is not None else None
            if prompt is not None and text.startswith(prompt):
                items.append(RewardItem(text=text, prompt=prompt, response=text[len(prompt) :]))
                spans.append((0, len(prompt)))
            else:
                items.append(RewardItem(text=text))
                spans.append(None)
        return self.source.prepare(items, spans, template=False)

    async def score(self, prepared: Sequence[Prepared]) -> list[float]:
        return await self.batcher.submit(prepared)

    def normalize(self, scores: Sequence[float]) -> list[float]:
        if self.calibration is None:
            raise RuntimeError("no calibration set loaded")
        mean, std = self.calibration.mean, self.calibration.std
        return [(score - mean) / std for score in scores]

    def _score_batch(self, batch: list[Prepared]) -> list[float]:
        """Runs in the scoring thread. Anything but one finite float per item is the source's failure."""
        try:
            scores = [float(score) for score in self.source.score(batch)]
        except Exception as exc:
            raise RewardSourceError(f"{self.source.name} failed: {exc.__class__.__name__}: {exc}") from exc
        if len(scores) != len(batch):
            raise RewardSourceError(
                f"{self.source.name} returned {len(scores)} scores for {len(batch)} items"
            )
        if not all(math.isfinite(score) for score in scores):
            raise RewardSourceError(f"{self.source.name} returned a non-finite score")
        return scores
