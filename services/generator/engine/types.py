"""What routes hand to an engine and get back, independent of the API dialect (OpenAI or TGI).

These are internal values, not API bodies, so they are frozen dataclasses: the routes translate them
from and to the pydantic schemas in raftflow.schemas.generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from raftflow.conversation import PromptFormat

ModelChoice = Literal["current", "reference"]
"""Which loaded model ``/v1/logprobs`` scores with: the served policy or the fixed reference."""

FinishReason = Literal["eos_token", "stop_sequence", "length"]
"""TGI's three reasons; the OpenAI routes fold the first two into "stop"."""


@dataclass(frozen=True)
class GenerationJob:
    prompts: list[str]
    n: int
    max_new_tokens: int
    min_new_tokens: int | None = None
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    """Stop strings; None: the prompt format's own (``hh``: the next turn's tag, see
    ``raftflow.conversation.default_stop``), [] none at all."""
    truncate: int | None = None
    """Keep only the last ``truncate`` prompt tokens (TGI's option)."""
    logprobs: bool = False
    """Also return per-token log-probabilities and texts (TGI details, best_of ranking)."""
    top_logprobs: int = 0
    """With ``logprobs``: also the most likely alternatives at each position (OpenAI's logprobs=N)."""
    echo_logprobs: bool = False
    """Also score the prompt's own tokens (OpenAI's echo with logprobs; evaluation harnesses use it)."""
    prompt_format: PromptFormat = "raw"
    """How each prompt becomes the conditioning text (raftflow.conversation); raw is OpenAI's meaning."""


@dataclass(frozen=True)
class GeneratedSample:
    text: str
    """The new text, cut before the stop string when one matched."""
    finish_reason: FinishReason
    completion_tokens: int
    stop: str | None = None
    """The stop string that ended it (TGI returns it as part of the text; OpenAI does not)."""
    token_ids: list[int] | None = None
    """Every token the policy sampled, EOS and the tokens of a matched stop string included (the text
    is cut; the ids are what the policy's log-probability is of). None where the backend gives no
    ids (a remote TGI server)."""
    token_texts: list[str] = field(default_factory=list)
    token_special: list[bool] = field(default_factory=list)
    logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = None
    """Per generated token, the ``top_logprobs`` most likely tokens (text -> log-probability)."""


@dataclass(frozen=True)
class ScoringJob:
    """What ``/v1/logprobs`` scores: each prompt rendered in ``prompt_format`` (as when sampling), then
    its response as text (tokenized after the prompt) or as the token ids the policy sampled."""

    prompts: list[str]
    responses: list[str] | None = None
    response_ids: list[list[int]] | None = None
    """Sampled ids, scored as they are (EOS included): no re-tokenization of the decoded text."""
    model: ModelChoice = "current"
    prompt_format: PromptFormat = "raw"
    include_eos: bool = False
    """Text responses: also score the EOS token after each (a perplexity of whole replies)."""


@dataclass(frozen=True)
class TokenLogprobs:
    """Per-token log-probabilities of a prompt (the first token has none: nothing conditions it)."""

    tokens: list[str]
    logprobs: list[float | None]
    top: list[dict[str, float]] | None


@dataclass(frozen=True)
class ModelState:
    """The checkpoint currently served, as /v1/models and /info report it."""

    name: str
    checkpoint: str
    version: str
    load_count: int
    loaded_at: float
    context_length: int | None
    dtype: str
    device: str


@dataclass(frozen=True)
class LogprobsOutput:
    model: ModelState
    """The checkpoint that scored these pairs (the current or the reference one, captured at the start)."""
    logprobs: list[float]
    """Sum of log p(response token | prompt, earlier response tokens) per pair, at temperature 1."""
    tokens: list[int]
    """Response tokens per pair (what the sum runs over)."""


@dataclass(frozen=True)
class GenerationOutput:
    model: ModelState
    """The checkpoint that produced these samples (not necessarily the current one after a reload)."""
    seed: int
    prompt_tokens: list[int]
    samples: list[list[GeneratedSample]]
    """``samples[prompt_index][sample_index]``."""
    prompt_texts: list[str] = field(default_factory=list)
    """The rendered text each prompt conditioned the model on (what ``echo`` returns)."""
    prompt_logprobs: list[TokenLogprobs] | None = None
    """With ``echo_logprobs``: each prompt's own token log-probabilities."""
    prompt_ids: list[list[int]] | None = None
    """The token ids each prompt conditioned the model on (None: the backend does not say)."""


class Engine(Protocol):
    """Both backends; routes see nothing else."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool: ...

    def state(self) -> ModelState: ...

    async def generate(self, job: GenerationJob) -> GenerationOutput: ...

    async def load(self, path: str) -> tuple[ModelState, ModelState]:
        """Load ``path`` and swap it in; returns ``(previous, current)``."""
        ...

    def reference_state(self) -> ModelState | None:
        """The reference checkpoint (for KL estimates), or None when none is loaded."""
        ...

    async def load_reference(self, path: str) -> ModelState:
        """Load ``path`` as the reference model (replacing any previous one); returns its state."""
        ...

    async def logprobs(self, job: ScoringJob) -> LogprobsOutput:
        """Sequence log-probabilities of each response given its prompt under the chosen model."""
        ...

    async def sleep(self, level: int = 1) -> None:
        """Hand the accelerator's memory back until :meth:`wake_up` (vLLM's sleep mode); engines that
        cannot raise :class:`UnsupportedOperation`."""
        ...

    async def wake_up(self) -> None: ...


class ContextLengthExceeded(ValueError):
    def __init__(self, prompt_index: int, prompt_tokens: int, max_new_tokens: int, context_length: int):
        self.prompt_index = prompt_index
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.context_length = context_length
        super().__init__(
            f"prompt {prompt_index} has {prompt_tokens} tokens; with {max_new_tokens} new tokens that "
            f"exceeds the model's context length of {context_length}"
        )


def check_context(prompt_ids: list[list[int]], max_new_tokens: int, context_length: int | None) -> None:
    """Every prompt plus ``max_new_tokens`` must fit the model's context (both engines, before any
    work): the first that does not is the request's fault, a 422 naming it."""
    if context_length is None:
        return
    for index, ids in enumerate(prompt_ids):
        if len(ids) + max_new_tokens > context_length:
            raise ContextLengthExceeded(index, len(ids), max_new_tokens, context_length)


class NoReferenceModel(RuntimeError):
    """``model="reference"`` was asked for but no reference checkpoint is loaded (a 409)."""

    def __init__(self) -> None:
        super().__init__(
            "no reference model is loaded: start the generator with GENERATOR_REFERENCE_MODEL or "
            'POST /v1/load {"reference": PATH} first'
        )


class LoadFailed(RuntimeError):
    def __init__(self, path: str, cause: BaseException):
        self.path = path
        self.cause = cause
        super().__init__(f"cannot load checkpoint {path!r}: {cause.__class__.__name__}: {cause}")


class UnsupportedOperation(RuntimeError):
    """The backend cannot do this at all (e.g. hot reload behind TGI)."""


class PromptFormatRejected(ValueError):
    """The request's prompt format cannot be rendered with this model (a 422 naming prompt_format)."""


class BackendRejected(ValueError):
    """The remote backend refused the request as invalid (its 4xx)."""
