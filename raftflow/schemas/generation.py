"""Wire formats of the generator: the OpenAI/vLLM completions API, the TGI subset, model management,
and the sampling semantics that servers and clients must agree on.

The small functions at the top (:func:`draw_max_tokens`, :func:`cut_at_stop`) live here rather than
in a service because they *are* part of the contract: the orchestrator's clients and the generator
service draw response lengths and cut stop strings the same way (and derive seeds by
``raftflow.seeds``), so a seeded run is reproducible whichever backend served it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from raftflow.conversation import PromptFormat
from raftflow.schemas.paths import NO_NUL
from raftflow.seeds import MAX_SEED

MAX_STOP_SEQUENCES = 4
MAX_STOP_LENGTH = 64
"""Stop strings: at most 4 (OpenAI's limit, TGI's default) of at most 64 characters. transformers
prepares stop strings by scanning the whole vocabulary in Python for every character of every string,
on the generator's one generation thread: 16 strings of 256 characters took 37 s against a 50k-token
vocabulary (0.8 s with the tiny test model's 1k), stalling every other request; 4 of 64 take about 3 s."""

MAX_LOGPROBS = 5
"""OpenAI's cap on completions ``logprobs``."""

MIN_SAMPLING_TEMPERATURE = 1e-2
"""Sampling temperatures below this sample at this (vLLM's rule): logits divided by 1e-300 overflow to
inf and sampling fails on NaN probabilities. 0 (OpenAI routes) still means greedy decoding."""

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]
StopString = Annotated[str, Field(min_length=1, max_length=MAX_STOP_LENGTH)]
PromptText = Annotated[str, Field(min_length=1)]


def draw_max_tokens(min_tokens: int | None, max_tokens: int, seed: int) -> int:
    """The new-token limit of one generate batch: uniform in ``[min_tokens, max_tokens]`` when
    ``min_tokens`` is set, as LMFlow-RAFT draws it once per batch (varied lengths keep the reward model
    from learning a length preference from a fixed cut-off); ``max_tokens`` otherwise."""
    if min_tokens is None or min_tokens >= max_tokens:
        return max_tokens
    return random.Random(seed).randint(min_tokens, max_tokens)


def cut_at_stop(text: str, stops: Sequence[str] | None) -> tuple[str, str | None]:
    """``(text before the earliest stop string, that stop string)``, or ``(text, None)``.

    Stop matching works on tokens, so the last token may run past the stop string; cutting the decoded
    text at its first occurrence gives the same result whatever the tokenizer (OpenAI semantics: the
    stop string itself is not returned).
    """
    best: tuple[int, str] | None = None
    for stop in stops or ():
        at = text.find(stop)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


# ----------------------------------------------------------------------------------------------------
# Shared by clients and servers


class SamplingParams(BaseModel):
    """How to sample; the same fields as OpenAI/vLLM completions plus ``min_tokens``.

    Defaults follow vLLM (``max_tokens`` 16, temperature 1, no top-p/top-k cut), not a model's own
    ``generation_config``: a sampler that silently inherits ``top_k=50`` from a checkpoint would not
    sample from the policy RAFT is estimating.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    max_tokens: int = Field(default=16, ge=1, strict=True, description="Upper bound on new tokens.")
    min_tokens: int | None = Field(
        default=None,
        ge=1,
        strict=True,
        description="raftflow extension: when set, the new-token limit of each generate batch is drawn "
        "uniformly in [min_tokens, max_tokens] (LMFlow-RAFT). NOT vLLM's min_tokens (a minimum before EOS).",
    )
    temperature: float = Field(
        default=1.0,
        ge=0.0,
        le=100.0,
        description="0 means greedy decoding; values in (0, 0.01) sample at 0.01 (as vLLM does).",
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=-1, ge=-1, strict=True, description="-1 or 0 disables top-k.")
    seed: Seed | None = Field(default=None, description="Same seed, same request: same samples.")
    stop: list[StopString] | None = Field(
        default=None,
        max_length=MAX_STOP_SEQUENCES,
        description="Stop strings (not returned in the text). Absent: the prompt format's own, for "
        "raftflow's prompt_format 'hh' the next turn ('\\n\\nHuman:', '\\n\\nAssistant:'), else none; "
        "[] stops at none.",
    )

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: object) -> object:
        # OpenAI accepts one string or a list; normalise so consumers only ever see a list.
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _min_not_above_max(self) -> SamplingParams:
        if self.min_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) must be <= max_tokens ({self.max_tokens})")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


TokenId = Annotated[int, Field(ge=0, strict=True)]


class Sample(BaseModel):
    """One response, as the orchestrator consumes it (backend-independent)."""

    text: str
    finish_reason: str = Field(description='"stop" (EOS or a stop string) or "length".')
    completion_tokens: int
    token_ids: list[int] | None = Field(
        default=None,
        description="The token ids the policy sampled, EOS and a stop string's tokens included: what its "
        "log-probability (KL) is computed of. None where the server gave none (TGI, older files).",
    )


# ----------------------------------------------------------------------------------------------------
# POST /v1/completions (OpenAI / vLLM)

UNSUPPORTED = "is not supported by the raftflow generator"


def only_false(cls: type, value: bool, info: ValidationInfo) -> bool:
    """Validator of a flag the API accepts but the generator cannot honour (OpenAI's ``stream``, TGI's
    ``watermark``): false passes, true is a 422 naming the field. Shared by the OpenAI and TGI schemas
    (``field_validator(names)(only_false)``)."""
    if value:
        raise ValueError(f"{info.field_name}=true {UNSUPPORTED}")
    return value


def only_unset(cls: type, value: object, info: ValidationInfo) -> object:
    """Validator of an option the generator cannot honour: absent or null passes, anything else is a 422."""
    if value is not None:
        raise ValueError(f"{info.field_name} {UNSUPPORTED}")
    return value


class CompletionRequest(SamplingParams):
    """OpenAI ``/v1/completions`` body. Unknown fields are ignored (as vLLM and OpenAI do); known
    options we cannot honour are rejected when set to anything but their default, never ignored."""

    # strict: a body must have the types its schema documents (lax mode took 0.0 as false, "1" as 1).
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    model: str | None = Field(
        default=None, description="Accepted for compatibility; the loaded model serves."
    )
    prompt: PromptText | list[PromptText] = Field(min_length=1, description="One prompt or a list.")
    n: int = Field(default=1, ge=1, strict=True, description="Samples per prompt.")
    prompt_format: PromptFormat = Field(
        default="raw",
        description="raftflow extension: how each prompt becomes the text the model is conditioned on. "
        "'raw' (OpenAI's meaning): as sent; 'hh': parsed as an HH-RLHF dialogue (or one user turn) and "
        "written '\\n\\nHuman: ...\\n\\nAssistant:'; 'chat_template': the tokenizer's template with the "
        "generation prompt; 'auto': the format the checkpoint was trained with, else its template, else hh.",
    )
    stream: bool = False
    echo: bool = Field(
        default=False, description="Return the rendered prompt before each completion (OpenAI's echo)."
    )
    logprobs: int | None = Field(
        default=None,
        ge=0,
        le=MAX_LOGPROBS,
        description="Per-token log-probabilities of each completion and the N most likely alternatives "
        "(OpenAI's logprobs=N); with echo, of the prompt's tokens too. Completion tokens are scored under "
        "the sampling distribution (temperature, top-k, top-p applied, as TGI reports them), prompt tokens "
        "under the model's own (temperature 1).",
    )
    return_token_ids: bool = Field(
        default=False,
        description="vLLM's option: each choice also carries token_ids (every sampled token, EOS and a "
        "stop string's included) and prompt_token_ids (what the model was conditioned on).",
    )
    best_of: int | None = None
    suffix: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    _false_only = field_validator("stream")(only_false)
    _unset_only = field_validator("suffix", "logit_bias")(only_unset)

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _zero_only(cls, value: float, info: ValidationInfo) -> float:
        if value != 0.0:
            raise ValueError(f"{info.field_name} other than 0 {UNSUPPORTED}")
        return value

    @model_validator(mode="after")
    def _best_of_is_n(self) -> CompletionRequest:
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError(f"best_of other than n {UNSUPPORTED}; sample n and rank them yourself")
        return self

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class ChatCompletionRequest(SamplingParams):
    """OpenAI ``/v1/chat/completions`` body: ``messages`` rendered with the tokenizer's chat template
    (the HH form for a tokenizer without one), ``n`` samples. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    model: str | None = Field(
        default=None, description="Accepted for compatibility; the loaded model serves."
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)
    n: int = Field(default=1, ge=1, strict=True, description="Samples for the conversation.")
    max_completion_tokens: int | None = Field(
        default=None, ge=1, strict=True, description="OpenAI's newer name for max_tokens; wins when set."
    )
    stream: bool = False
    user: str | None = None

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, value: bool) -> bool:
        if value:
            raise ValueError(f"stream=true {UNSUPPORTED}")
        return value

    @model_validator(mode="after")
    def _max_completion_tokens_wins(self) -> ChatCompletionRequest:
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None
    completion_tokens: int = Field(description="raftflow extension: new tokens in this sample.")


class CompletionLogprobs(BaseModel):
    """OpenAI's legacy completions ``logprobs`` object."""

    tokens: list[str]
    token_logprobs: list[float | None] = Field(description="None for the first prompt token (echo).")
    top_logprobs: list[dict[str, float]] | None = Field(description="None when logprobs=0.")
    text_offset: list[int] = Field(description="Character offset of each token in the returned text.")


class CompletionChoice(BaseModel):
    index: int = Field(description="prompt_index * n + sample_index.")
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: CompletionLogprobs | None = None
    prompt_index: int = Field(description="raftflow extension: which prompt this sample answers.")
    completion_tokens: int = Field(description="raftflow extension: new tokens in this sample.")
    token_ids: list[int] | None = Field(default=None, description="With return_token_ids (vLLM's field).")
    prompt_token_ids: list[int] | None = Field(
        default=None, description="With return_token_ids (vLLM's field)."
    )


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Prompt tokens, counted once per prompt (not once per sample).")
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str = Field(description="The checkpoint that produced these samples, with its version.")
    system_fingerprint: str = Field(description="The checkpoint's version (OpenAI's meaning: backend state).")
    choices: list[CompletionChoice]
    usage: Usage


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = Field(description="The checkpoint that produced these samples, with its version.")
    system_fingerprint: str = Field(description="The checkpoint's version.")
    choices: list[ChatChoice]
    usage: Usage


# ----------------------------------------------------------------------------------------------------
# Model management: GET /v1/models, POST /v1/load


class ModelCard(BaseModel):
    """An OpenAI model object, plus what a RAFT loop needs to know about the weights behind it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "raftflow"
    root: str = Field(description="The checkpoint path or hub id.")
    version: str = Field(description="raftflow.modeling.checkpoint_version of the checkpoint.")
    load_count: int = Field(description="Checkpoints loaded since start, the initial one included.")
    max_model_len: int | None = Field(default=None, description="Context length (prompt + new tokens).")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
    checkpoint: str
    version: str
    load_count: int
    reference_checkpoint: str | None = Field(
        default=None, description="The reference model of /v1/logprobs (None: none loaded)."
    )
    reference_version: str | None = None


CheckpointPath = Annotated[str, Field(min_length=1, max_length=4096, pattern=NO_NUL)]


class LoadRequest(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False)

    path: CheckpointPath | None = Field(
        default=None, description="Local checkpoint directory or hub id to serve."
    )
    reference: CheckpointPath | None = Field(
        default=None, description="Checkpoint to load (or replace) as the reference of /v1/logprobs."
    )

    @model_validator(mode="after")
    def _something_to_load(self) -> LoadRequest:
        if self.path is None and self.reference is None:
            raise ValueError("give path (the checkpoint to serve), reference, or both")
        return self


class SleepRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    level: int = Field(
        default=1,
        ge=1,
        le=2,
        description="vLLM's sleep level: 1 offloads the weights to CPU memory and drops the KV cache; 2 "
        "drops the weights too (the next load brings new ones).",
    )


class SleepResponse(BaseModel):
    sleeping: bool


class LoadResponse(BaseModel):
    """After a reference-only load, ``previous_*`` equal the unchanged current checkpoint."""

    model: str
    checkpoint: str
    version: str
    load_count: int
    load_seconds: float
    previous_checkpoint: str
    previous_version: str
    reference_checkpoint: str | None = None
    reference_version: str | None = None


# ----------------------------------------------------------------------------------------------------
# POST /v1/logprobs: log-probabilities of given responses (KL to a reference model)


class LogprobsRequest(BaseModel):
    """Score given (prompt, response) pairs instead of sampling: the orchestrator estimates
    KL(policy || initial policy) from the current and reference log-probs of the same samples.

    A response is given as text, or as the token ids the policy sampled (``response_token_ids``, from
    ``/v1/completions`` with ``return_token_ids``): the ids are scored as they are, the EOS that ended a
    sample included, while a text is tokenized again (which may give other ids than were sampled) and
    carries no EOS."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    prompts: list[PromptText] = Field(min_length=1)
    responses: list[str] | None = Field(
        default=None, min_length=1, description="Response texts, one per prompt (or response_token_ids)."
    )
    response_token_ids: list[list[TokenId]] | None = Field(
        default=None,
        min_length=1,
        description="The sampled token ids of each response, one list per prompt (or responses).",
    )
    include_eos: bool = Field(
        default=False,
        description="With responses: also score the model's EOS token after each (a whole reply, as "
        "training appends it; what a perplexity of replies counts).",
    )
    model: Literal["current", "reference"] = Field(
        default="current", description="current: the served checkpoint; reference: the reference model."
    )
    prompt_format: PromptFormat = Field(
        default="raw",
        description="How prompts are rendered before the response, as in /v1/completions: score a "
        "response in the format it was sampled in.",
    )

    @field_validator("responses", "response_token_ids")
    @classmethod
    def _one_per_prompt(cls, value: list | None, info: ValidationInfo) -> list | None:
        prompts = info.data.get("prompts")
        if value is not None and prompts is not None and len(prompts) != len(value):
            raise ValueError(
                f"need one response per prompt: {len(value)} responses for {len(prompts)} prompts"
            )
        return value

    @model_validator(mode="after")
    def _texts_or_ids(self) -> LogprobsRequest:
        if (self.responses is None) == (self.response_token_ids is None):
            raise ValueError("give responses (texts) or response_token_ids, one of them")
        if self.response_token_ids is not None and self.include_eos:
            raise ValueError("include_eos applies to text responses; token ids carry their own EOS")
        return self


class LogprobsResponse(BaseModel):
    logprobs: list[float] = Field(description="Sum of log p(response tokens | prompt) per pair.")
    tokens: list[int] = Field(description="Response tokens per pair.")
    model: str = Field(description="The checkpoint that scored, with its version.")
    version: str
