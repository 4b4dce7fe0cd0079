"""K samples per prompt from a text-generation-inference (TGI) server.

TGI has no ``n``, and its ``best_of`` is capped (``--max-best-of``, default 2), forbids ``seed`` and
returns the ranked-best sequence rather than K independent ones. So K samples are K single-sample
requests, each with its own seed ``derive_seed(seed, prompt_i, k)``: reproducible, independent, and
batched by TGI's own continuous batching. ``concurrency`` bounds the requests in flight, so thousands
of samples do not open thousands of sockets at once.

Built on the official ``text_generation.AsyncClient`` (its 10 s default timeout is far too short for
sampling: ``timeout`` defaults to 600 s here).
"""

from __future__ import annotations

import asyncio

import aiohttp
from text_generation import AsyncClient
from text_generation import errors as tgi_errors
from text_generation.types import Response

from raftflow.clients.errors import ComponentMisbehaved, ComponentRejected
from raftflow.clients.http import auth_headers, gather_failfast, with_retries
from raftflow.schemas.generation import Sample, SamplingParams, cut_at_stop, draw_max_tokens
from raftflow.seeds import derive_seed, fresh_seed

_TRANSIENT = (
    aiohttp.ClientConnectionError,  # refused, reset, server disconnected
    aiohttp.ContentTypeError,  # a proxy's HTML error page instead of TGI's JSON
    asyncio.TimeoutError,
    tgi_errors.OverloadedError,
    tgi_errors.ShardNotReadyError,
    tgi_errors.ShardTimeoutError,
    tgi_errors.RateLimitExceededError,
    tgi_errors.GenerationError,
    tgi_errors.IncompleteGenerationError,
    tgi_errors.UnknownError,  # what TGI's client makes of any other 5xx
)
_REJECTED = {
    tgi_errors.ValidationError: 422,
    tgi_errors.BadRequestError: 400,
    tgi_errors.NotFoundError: 404,
}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT)


class TGISamplerClient:
    def __init__(
        self,
        base_url: str,
        api_token: str | None = None,
        timeout: float = 600.0,
        retry_seconds: float = 60.0,
        concurrency: int = 8,
        component: str = "generator",
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.retry_seconds = retry_seconds
        self.component = component
        self._client = AsyncClient(self.base_url, headers=auth_headers(api_token) or None, timeout=timeout)
        self._in_flight = asyncio.Semaphore(concurrency)

    async def __aenter__(self) -> TGISamplerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to release (the TGI client opens a session per request); here for symmetry with
        CompletionsClient, so callers can treat both samplers alike."""

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        """``n`` samples for each prompt, grouped per prompt in input order.

        ``min_tokens`` draws one new-token limit for the whole call (the call is the batch here).
        Greedy decoding (temperature 0) sends one request per prompt and repeats its answer.
        """
        if not prompts:
            return []
        seed = params.seed if params.seed is not None else fresh_seed()
        max_new_tokens = draw_max_tokens(params.min_tokens, params.max_tokens, derive_seed(seed, -1))
        per_prompt = 1 if params.greedy else n
        flat = await gather_failfast(
            [
                self._one(prompt, params, max_new_tokens, derive_seed(seed, i, k))
                for i, prompt in enumerate(prompts)
                for k in range(per_prompt)
            ]
        )
        groups = [flat[i * per_prompt : (i + 1) * per_prompt] for i in range(len(prompts))]
        return [group * n for group in groups] if params.greedy else groups

    async def _one(self, prompt: str, params: SamplingParams, max_new_tokens: int, seed: int) -> Sample:
        sampling = not params.greedy

        async def call() -> Response:
            return await self._client.generate(
                prompt,
                do_sample=sampling,
                max_new_tokens=max_new_tokens,
                seed=seed if sampling else None,
                stop_sequences=params.stop or None,
                # TGI validates these strictly (temperature > 0, 0 < top_p < 1, top_k > 0): "off" is None.
                temperature=params.temperature if sampling else None,
                top_p=params.top_p if sampling and params.top_p < 1.0 else None,
                top_k=params.top_k if sampling and params.top_k > 0 else None,
            )

        async with self._in_flight:
            try:
                response = await with_retries(
                    call,
                    component=self.component,
                    url=self.base_url,
                    retry_seconds=self.retry_seconds,
                    transient=_transient,
                )
            except tuple(_REJECTED) as exc:
                status = _REJECTED[type(exc)]
                raise ComponentRejected(self.component, status, str(exc), self.base_url) from exc
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                # text_generation parses any answer as TGI's: another server's error body is a
                # KeyError('error'), its 200 body a KeyError or a pydantic error.
                raise ComponentMisbehaved(self.component, self.base_url, "TGI's API", exc) from exc
        return _to_sample(response, params.stop)


def _to_sample(response: Response, stops: list[str] | None) -> Sample:
    details = response.details
    finish = details.finish_reason.value
    text = response.generated_text
    if finish == "stop_sequence":
        text, _ = cut_at_stop(text, stops)  # TGI keeps the stop string; OpenAI semantics drop it
    return Sample(
        text=text,
        finish_reason="length" if finish == "length" else "stop",
        completion_tokens=details.generated_tokens,
    )
