"""Prompts to token ids through the one conversation contract, with nothing but a tokenizer.

Both engines condition on exactly these ids: the transformers engine feeds them to ``generate``, the
vLLM engine sends them to vLLM as token prompts (so vLLM never re-tokenizes or re-templates a prompt
its own way, and a sample conditions on the same tokens whichever engine drew it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from raftflow.conversation import (
    PromptFormat,
    RenderedPair,
    ResolvedFormat,
    default_stop,
    encode_prompt,
    render_pair,
    render_prompt,
    resolve_format,
)
from services.generator.engine.types import BackendRejected, PromptFormatRejected, ScoringJob


@contextmanager
def rejecting_render_errors() -> Iterator[None]:
    """Rendering failures (a chat template the tokenizer lacks, or one that refuses the conversation)
    as :class:`PromptFormatRejected`, which the routes answer with a 422 on ``prompt_format``."""
    try:
        yield
    except (ValueError, TemplateError) as exc:
        raise PromptFormatRejected(str(exc)) from exc


@dataclass(frozen=True)
class PromptCodec:
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    recorded: ResolvedFormat | None = None
    """The format the checkpoint's training recorded (what ``auto`` resolves to first)."""

    def resolve(self, fmt: PromptFormat) -> ResolvedFormat:
        """``fmt`` for this checkpoint (``auto``: what its training recorded, its template, else hh);
        ValueError when the format needs a chat template the tokenizer lacks."""
        return resolve_format(fmt, self.tokenizer, self.recorded)

    def render(self, prompts: list[str], fmt: PromptFormat) -> tuple[ResolvedFormat, list[str]]:
        """The texts the model is conditioned on."""
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
        """Token ids per rendered prompt, unpadded; special tokens as the trainer adds them (none
        after a chat template)."""
        ids = [encode_prompt(self.tokenizer, text, fmt) for text in texts]
        return [row[-truncate:] for row in ids] if truncate else ids

    def encode_prompts(
        self, prompts: list[str], fmt: PromptFormat, truncate: int | None = None
    ) -> tuple[list[str], list[list[int]]]:
        """The texts the model is conditioned on and their token ids (TGI's ``truncate`` applied)."""
        with rejecting_render_errors():
            resolved, texts = self.render(prompts, fmt)
            return texts, self.encode(texts, resolved, truncate)

    def encode_pairs(
        self, prompts: list[str], responses: list[str], fmt: PromptFormat = "raw"
    ) -> list[tuple[list[int], list[int]]]:
        """``(prompt ids, response ids)`` per pair, tokenized separately as the generator samples them:
        the rendered prompt as :meth:`encode` conditions on it, then the response as it follows the
        prompt in the rendered pair (hh's separating space included, a template's end-of-turn
        excluded), without special tokens. Tokenizing the joined string could merge tokens across the
        boundary and score a sequence the policy never produced."""
        with rejecting_render_errors():
            resolved, pairs = self.render_pairs(prompts, responses, fmt)
        segments = [
            pair.text[pair.completion_start : pair.response_span[1] if pair.response_span else len(pair.text)]
            for pair in pairs
        ]
        response_ids = self.tokenizer(segments, add_special_tokens=False)["input_ids"] if segments else []
        prompt_ids = self.encode([pair.prompt_text for pair in pairs], resolved)
        return list(zip(prompt_ids, response_ids, strict=True))

    def stop_strings(self, stop: list[str] | None, fmt: PromptFormat) -> list[str]:
        """A request's stop strings: as given, or (None) the format's default (``hh``: the next turn)."""
        if stop is not None:
            return list(stop)
        with rejecting_render_errors():
            return default_stop(self.resolve(fmt))

    def encode_scoring(self, job: ScoringJob) -> list[tuple[list[int], list[int]]]:
        """``(prompt ids, response ids)`` per pair of a ``/v1/logprobs`` job: the prompt as sampling
        conditions on it; the response's sampled ids as given, or its text as :meth:`encode_pairs`
        tokenizes it (then EOS after it with ``include_eos``, as the trainer appends it)."""
        if job.response_ids is not None:
            _, prompt_ids = self.encode_prompts(job.prompts, job.prompt_format)
            return [(p, list(r)) for p, r in zip(prompt_ids, job.response_ids, strict=True)]
        pairs = self.encode_pairs(job.prompts, job.responses or [], job.prompt_format)
        if not job.include_eos:
            return pairs
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise BackendRejected("include_eos: this model's tokenizer has no EOS token")
        return [(prompt, [*response, eos]) for prompt, response in pairs]
