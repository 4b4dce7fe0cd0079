"""Run one planned batch through ``model.generate`` and turn its rows into samples.

Runs on the engine's single generation thread only: the model and the (Rust) tokenizer are not safe
to use from two threads at once, and the global torch RNG, seeded here right before ``generate``, is
what makes a seeded request reproducible.

A batch takes its request's ``cancelled`` event: set by the event loop when the request is cancelled
(its client left), it skips a batch that has not started and stops a running ``generate`` at its next
token (:class:`CancelledCriteria`) instead of after ``max_new_tokens``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache, GenerationConfig
from transformers.generation.stopping_criteria import (
    StoppingCriteria,
    StoppingCriteriaList,
    StopStringCriteria,
)

from raftflow.schemas.generation import MIN_SAMPLING_TEMPERATURE, cut_at_stop
from services.generator.engine.loaded_model import LoadedModel
from services.generator.engine.sample_text import without_partial_character
from services.generator.engine.types import FinishReason, GeneratedSample, GenerationJob, TokenLogprobs


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` padded on the left, so every row's new tokens start at the same
    column right after its own prompt."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


def generation_config(
    loaded: LoadedModel, job: GenerationJob, rows: int, max_new_tokens: int, stops: list[str]
) -> GenerationConfig:
    """Every knob explicit: the checkpoint's own generation_config (Llama ships temperature 0.6, GPT-2
    top_k 50 by default) must not change what the API caller asked for."""
    return GenerationConfig(
        do_sample=job.do_sample,
        # Clamped: a temperature of 1e-300 turns the logits into inf and sampling into a 500.
        temperature=max(job.temperature, MIN_SAMPLING_TEMPERATURE) if job.do_sample else 1.0,
        top_p=job.top_p if job.do_sample else 1.0,
        top_k=job.top_k if job.do_sample else None,
        typical_p=job.typical_p if job.do_sample else 1.0,
        repetition_penalty=job.repetition_penalty,
        max_new_tokens=max_new_tokens,
        num_return_sequences=rows,
        stop_strings=stops or None,
        pad_token_id=loaded.pad_token_id,
        eos_token_id=sorted(loaded.eos_token_ids) or None,
        output_scores=job.logprobs,
        return_dict_in_generate=True,
    )


def matchable_stops(loaded: LoadedModel, stops: list[str]) -> list[str]:
    """The stop strings to hand ``generate``: ``stops``, or none when no token of the vocabulary can end
    any of them.

    transformers' stop-string criterion raises ValueError when not one stop string can be matched by
    the vocabulary's tokens (a stop of characters the tokenizer never produces, e.g. an emoji for an
    ASCII vocabulary), which was a 500 for a valid request. Such a stop string cannot occur in the
    generated text, so generating without it changes no sample; :func:`cut_at_stop` still cuts the
    decoded text. The check builds the criterion once; ``generate`` then finds it in transformers'
    own cache.
    """
    if not stops:
        return []
    try:
        StopStringCriteria(loaded.tokenizer, stops)
    except ValueError:
        return []
    return stops


class GenerationCancelled(Exception):
    """The batch's request was cancelled: it did not start, or its ``generate`` stopped early
    (``stopped``); nobody waits for its rows."""

    def __init__(self, stopped: bool) -> None:
        super().__init__("stopped at the next token" if stopped else "skipped before it started")
        self.stopped = stopped


class CancelledCriteria(StoppingCriteria):
    """Ends every row of a ``generate`` call once ``event`` is set: checked after each new token, so a
    cancelled request frees the generation thread within one decoding step. While the event is clear it
    stops nothing, so the samples are those ``generate`` gives without it."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return torch.full(  # type: ignore[return-value]
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def run_batch(
    loaded: LoadedModel,
    prompt_ids: list[list[int]],
    rows: int,
    job: GenerationJob,
    max_new_tokens: int,
    seed: int,
    on_generate: Callable[[int, float], None] | None = None,
    cancelled: threading.Event | None = None,
) -> list[list[GeneratedSample]]:
    """``rows`` samples for each prompt in one generate call; ``on_generate(rows, seconds)`` reports it.
    Raises :class:`GenerationCancelled` when ``cancelled`` is set before or during the call."""
    if cancelled is not None and cancelled.is_set():
        raise GenerationCancelled(stopped=False)
    input_ids, attention_mask = left_pad(prompt_ids, loaded.pad_token_id)
    input_ids, attention_mask = input_ids.to(loaded.device), attention_mask.to(loaded.device)
    stops = matchable_stops(loaded, job.stop)
    criteria = [CancelledCriteria(cancelled)] if cancelled is not None else []
    started = time.perf_counter()
    torch.manual_seed(seed)
    with torch.inference_mode():
        cache = None
        return_sequences = rows
        if rows > 1 and input_ids.shape[1] > 1 and loaded.shared_prefill:
            cache = prefill_once(loaded.model, input_ids, attention_mask, rows)
            input_ids = input_ids.repeat_interleave(rows, dim=0)
            attention_mask = attention_mask.repeat_interleave(rows, dim=0)
            return_sequences = 1
        out = loaded.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            past_key_values=cache,
            generation_config=generation_config(loaded, job, return_sequences, max_new_tokens, stops),
            use_model_defaults=False,
            tokenizer=loaded.tokenizer if stops else None,
            stopping_criteria=StoppingCriteriaList(criteria),
        )
        if cancelled is not None and cancelled.is_set():
            raise GenerationCancelled(stopped=True)
        new_tokens = out.sequences[:, input_ids.shape[1] :].cpu()
        logprobs = None
        top: list[list[dict[str, float]]] | None = None
        if job.logprobs:
            scores = loaded.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            logprobs = scores.float().cpu()
            if job.top_logprobs > 0:
                top = top_alternatives(
                    loaded, [torch.log_softmax(s.float(), -1) for s in out.scores], job.top_logprobs
                )
    if on_generate is not None:
        on_generate(len(prompt_ids) * rows, time.perf_counter() - started)

    samples = [
        to_sample(
            loaded,
            new_tokens[i].tolist(),
            None if logprobs is None else logprobs[i],
            job,
            max_new_tokens,
            None if top is None else top[i],
        )
        for i in range(new_tokens.shape[0])
    ]
    # generate() returns rows prompt-major: all samples of prompt 0, then prompt 1, ...
    return [samples[p * rows : (p + 1) * rows] for p in range(len(prompt_ids))]


def prefill_once(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, copies: int
) -> DynamicCache:
    """The KV cache of every prompt token but the last, computed once per prompt and copied to its
    ``copies`` rows; ``generate`` then starts from the last prompt token.

    ``num_return_sequences`` alone would run the prompt through the model once per sample: with n=8
    and prompts as long as the responses, that is most of the compute (vLLM shares a prompt's KV
    blocks across its n samples for the same reason). Only the base model runs here, so no logits
    over the vocabulary are computed for prompt positions. Position ids follow generate's own rule
    for left padding, so the result is the same as without sharing.
    """
    position_ids = attention_mask.long().cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    cache = DynamicCache(config=model.config)
    model.base_model(
        input_ids=input_ids[:, :-1],
        attention_mask=attention_mask[:, :-1],
        position_ids=position_ids[:, :-1],
        past_key_values=cache,
        use_cache=True,
    )
    cache.batch_repeat_interleave(copies)
    return cache


def top_alternatives(
    loaded: LoadedModel, step_logprobs: list[torch.Tensor], n: int
) -> list[list[dict[str, float]]]:
    """Per row, per step: the ``n`` most likely next tokens and their log-probabilities."""
    values, ids = torch.stack(step_logprobs, dim=1).topk(n, dim=-1)  # rows x steps x n
    decode = loaded.tokenizer.decode
    return [
        [
            {decode([int(t)]): float(v) for t, v in zip(row_ids, row_values, strict=True)}
            for row_ids, row_values in zip(r_ids, r_values, strict=True)
        ]
        for r_ids, r_values in zip(ids.tolist(), values.tolist(), strict=True)
    ]


def prompt_token_logprobs(
    loaded: LoadedModel, prompt_ids: list[list[int]], top_n: int
) -> list[TokenLogprobs]:
    """Log p(token | the tokens before it) for every prompt token, in one padded forward pass (the model's
    own distribution, temperature 1): what OpenAI's ``echo`` with ``logprobs`` returns."""
    input_ids, attention_mask = left_pad(prompt_ids, loaded.pad_token_id)
    input_ids, attention_mask = input_ids.to(loaded.device), attention_mask.to(loaded.device)
    position_ids = attention_mask.cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    decode = loaded.tokenizer.decode
    results = []
    with torch.inference_mode():
        logits = loaded.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).logits
        width = input_ids.shape[1]
        for row, ids in enumerate(prompt_ids):
            start = width - len(ids)
            scores = torch.log_softmax(logits[row, start : width - 1].float(), dim=-1)  # predicts ids[1:]
            targets = input_ids[row, start + 1 : width]
            chosen = scores.gather(-1, targets[:, None]).squeeze(-1).tolist() if len(ids) > 1 else []
            top = None
            if top_n > 0:
                values, alternatives = scores.topk(top_n, dim=-1)
                top = [{}] + [
                    {decode([int(t)]): float(v) for t, v in zip(a, b, strict=True)}
                    for a, b in zip(alternatives.tolist(), values.tolist(), strict=True)
                ]
            results.append(TokenLogprobs([decode([t]) for t in ids], [None, *chosen], top))
    return results


def to_sample(
    loaded: LoadedModel,
    tokens: list[int],
    logprobs: torch.Tensor | None,
    job: GenerationJob,
    max_new_tokens: int,
    top: list[dict[str, float]] | None = None,
) -> GeneratedSample:
    """One row of ``generate``'s output as a sample. Its ``token_ids`` are every token the row
    sampled, EOS and a stop string's tokens included: what its log-probability is of, whatever the
    text (cut at the stop, special tokens left out) re-encodes to."""
    stops = job.stop or []
    count, ended_by_eos = _generated_length(tokens, loaded.eos_token_ids, loaded.pad_token_id)
    kept = tokens[:count]
    text, stop = cut_at_stop(loaded.tokenizer.decode(kept, skip_special_tokens=True), stops)
    finish: FinishReason
    if ended_by_eos:
        finish = "eos_token"
    elif stop is not None or (stops and count < max_new_tokens):
        # Stopped early without EOS: a stop string matched (possibly straddling the prompt's end).
        finish = "stop_sequence"
    else:
        finish = "length"
        text = without_partial_character(text)
    details = {}
    if job.logprobs:
        special = set(loaded.tokenizer.all_special_ids)
        details = {
            "token_texts": [loaded.tokenizer.decode([token]) for token in kept],
            "token_special": [token in special for token in kept],
            "logprobs": [float(x) for x in logprobs[:count]] if logprobs is not None else None,
            "top_logprobs": top[:count] if top is not None else None,
        }
    return GeneratedSample(
        text=text, finish_reason=finish, completion_tokens=count, stop=stop, token_ids=kept, **details
    )


def _generated_length(tokens: list[int], eos_ids: frozenset[int], pad_id: int) -> tuple[int, bool]:
    """Tokens this row really generated, EOS included, and whether EOS ended it. After a row finishes,
    generate() fills it with the pad token (often the EOS token itself)."""
    for position, token in enumerate(tokens):
        if token in eos_ids:
            return position + 1, True
    end = len(tokens)
    while end > 0 and tokens[end - 1] == pad_id:
        end -= 1
    return end, False


def score_batch(loaded: LoadedModel, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """Sum of log p(response tokens | prompt) per pair, in one forward pass (temperature 1, no warpers).

    Rows are left padded with the position ids ``generate`` uses (``prefill_once``), so each row sees
    the same positions and attention as when it was sampled, and every response ends at the last
    column. Only the columns that predict response tokens go through the LM head (``logits_to_keep``:
    the model applies its head, and any final soft-capping, to those hidden states alone), not the
    prompt's: a vocabulary-wide row per prompt token was most of the memory and time for long prompts.
    The log-softmax runs in float32 on those columns, and the sums come back in one transfer.
    """
    keep = max((len(response) for _, response in pairs), default=0)
    if keep == 0:
        return [0.0] * len(pairs)
    input_ids, attention_mask = left_pad(
        [prompt + response for prompt, response in pairs], loaded.pad_token_id
    )
    input_ids, attention_mask = input_ids.to(loaded.device), attention_mask.to(loaded.device)
    position_ids = attention_mask.cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    width = input_ids.shape[1]
    lengths = torch.tensor([len(response) for _, response in pairs], device=loaded.device)
    with torch.inference_mode():
        extra = {"logits_to_keep": keep + 1} if loaded.keeps_logits else {}
        logits = loaded.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            **extra,
        ).logits
        # Columns width-keep-1 .. width-2 predict the tokens in columns width-keep .. width-1.
        logits = logits[:, -(keep + 1) : -1]
        targets = input_ids[:, width - keep :]
        picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        # A shorter response fills only the last columns of the window: the rest is its prompt or padding.
        in_response = torch.arange(keep, device=loaded.device)[None, :] >= (keep - lengths)[:, None]
        # Summed in float64: the total then hardly depends on how many columns a batch padded in.
        sums = picked.double().masked_fill(~in_response, 0.0).sum(-1)
    return [float(x) for x in sums.cpu().tolist()]
