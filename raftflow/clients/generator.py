"""Client for any OpenAI-compatible ``/v1/completions`` server: the raftflow generator or vLLM.

The orchestrator samples K responses for many prompts through :meth:`CompletionsClient.sample`, which
splits the prompts into requests of ``prompts_per_request`` (so progress can be reported and one
failure costs little), keeps two requests in flight (``raftflow.chunks``: the server never idles
between chunks), and regroups the flat ``choices`` (``index = prompt_i * n + j``) per prompt.

Failures are typed for the orchestrator: a server that stays unreachable or keeps answering 5xx for
``retry_seconds`` raises :class:`ComponentUnavailable`; a 4xx (the request itself is wrong) raises
:class:`ComponentRejected` at once, since retrying cannot help.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from raftflow.chunks import GENERATOR_REQUESTS_IN_FLIGHT, map_chunks
from raftflow.clients.errors import ComponentMisbehaved, unexpected_answer
from raftflow.clients.http import ServiceHTTP
from raftflow.conversation import PromptFormat, default_stop, render_prompt
from raftflow.schemas.generation import (
    LogprobsRequest,
    LogprobsResponse,
    Sample,
    SamplingParams,
)
from raftflow.seeds import derive_seed

COMPONENT = "generator"


class CompletionsClient:
    def __init__(
        self,
        base_url: str,
        api_token: str | None = None,
        timeout: float = 600.0,
        retry_seconds: float = 60.0,
        prompts_per_request: int = 16,
        model: str | None = None,
        prompt_format: PromptFormat = "raw",
    ) -> None:
        """``prompt_format``: how the server renders each prompt (raftflow.conversation). A raftflow
        generator renders it with the model's tokenizer; for another OpenAI-compatible server the
        client renders ``hh`` itself and refuses formats that need the tokenizer."""
        if prompts_per_request < 1:
            raise ValueError("prompts_per_request must be >= 1")
        self._service = ServiceHTTP(COMPONENT, base_url, api_token, timeout, retry_seconds)
        self.base_url = self._service.base_url
        self.prompts_per_request = prompts_per_request
        self._model = model
        self.prompt_format: PromptFormat = prompt_format
        self._raftflow_server: bool | None = None

    async def __aenter__(self) -> CompletionsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._service.aclose()

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        """``n`` samples for each prompt, grouped per prompt in input order.

        With ``params.seed`` set, a call that fits one request sends the seed as given (the loop and
        ``raftflow sample`` already seed each chunk, so a generator URL and a model in process give the
        same samples); a larger call sends ``derive_seed(seed, i)`` with request ``i``: reproducible,
        and requests do not repeat each other's random streams.
        """
        if not prompts:
            return []
        await self._discover()
        size = self.prompts_per_request
        split = len(prompts) > size

        async def run(start: int) -> list[list[Sample]]:
            seed = params.seed
            if seed is not None and split:
                seed = derive_seed(seed, start // size)
            chunk = prompts[start : start + size]
            return await self._complete(chunk, n, params.model_copy(update={"seed": seed}))

        results = await map_chunks(len(prompts), size, run, GENERATOR_REQUESTS_IN_FLIGHT)
        return [samples for chunk_samples in results for samples in chunk_samples]

    async def load_checkpoint(self, path: str) -> dict:
        """``POST /v1/load``: the server swaps to ``path`` once it is fully loaded; returns its report."""
        return await self._request("POST", "/v1/load", json={"path": path})

    async def load_reference(self, path: str) -> dict:
        """``POST /v1/load {"reference": path}``: load (or replace) the reference model of
        :meth:`sequence_logprobs`; the served checkpoint is unchanged. Returns the server's report."""
        return await self._request("POST", "/v1/load", json={"reference": path})

    async def sleep(self, level: int = 1) -> dict:
        """``POST /v1/sleep``: the generator's vLLM engine hands its GPU memory back until
        :meth:`wake_up` (a 409 from any other engine, and on CPU)."""
        return await self._request("POST", "/v1/sleep", json={"level": level})

    async def wake_up(self) -> dict:
        return await self._request("POST", "/v1/wake_up", json={})

    async def sequence_logprobs(
        self, prompts: list[str], responses: list[str], model: Literal["current", "reference"] = "current"
    ) -> list[float]:
        """Sum of log p(response | prompt) per pair under the served (``current``) or reference model
        (raftflow generator only: ``POST /v1/logprobs``), each response text tokenized after its prompt.
        Split into requests of ``prompts_per_request`` pairs like :meth:`sample`, so any number of
        pairs fits the server's GENERATOR_MAX_PROMPTS."""
        return (await self.scored_logprobs(prompts, responses, model))[0]

    async def sample_logprobs(
        self, prompts: list[str], samples: list[Sample], model: Literal["current", "reference"] = "current"
    ) -> list[float]:
        """Sum of log p(sample | prompt) per sample: of the token ids the policy sampled when every
        sample carries them (EOS included, nothing re-tokenized: what a KL estimate needs), else of the
        texts (samples from a server that gives no ids, or read from an older samples.json)."""
        ids = [sample.token_ids for sample in samples if sample.token_ids is not None]
        if len(ids) == len(samples):
            return (await self.scored_logprobs(prompts, None, model, response_ids=ids))[0]
        return await self.sequence_logprobs(prompts, [sample.text for sample in samples], model)

    async def scored_logprobs(
        self,
        prompts: list[str],
        responses: list[str] | None,
        model: Literal["current", "reference"] = "current",
        *,
        response_ids: list[list[int]] | None = None,
        include_eos: bool = False,
    ) -> tuple[list[float], list[int]]:
        """(sum of log-probabilities, response tokens) per pair: what a perplexity needs. The responses
        are texts, or (``response_ids``) token ids; ``include_eos`` also scores EOS after each text."""
        given = responses if responses is not None else response_ids
        if given is None or len(prompts) != len(given):
            raise ValueError(f"{len(prompts)} prompts but {len(given or [])} responses")
        if not prompts:
            return [], []
        size = self.prompts_per_request

        async def run(start: int) -> LogprobsResponse:
            end = start + size
            body = LogprobsRequest(
                prompts=prompts[start:end],
                responses=responses[start:end] if responses is not None else None,
                response_token_ids=response_ids[start:end] if response_ids is not None else None,
                include_eos=include_eos,
                model=model,
                prompt_format=self.prompt_format,
            )
            payload = await self._request("POST", "/v1/logprobs", json=body.model_dump(exclude_defaults=True))
            return LogprobsResponse.model_validate(payload)

        results = await map_chunks(len(prompts), size, run, GENERATOR_REQUESTS_IN_FLIGHT)
        return [v for r in results for v in r.logprobs], [n for r in results for n in r.tokens]

    async def perplexity(self, prompts: list[str], responses: list[str]) -> float:
        """exp(mean negative log-likelihood per response token, EOS included) of given pairs under the
        served model: how well the policy still predicts reference answers as RAFT moves it. EOS counts
        as the trainer trains it and a sampled reply ends with it (one definition with the demo's)."""
        sums, tokens = await self.scored_logprobs(prompts, responses, include_eos=True)
        return math.exp(-sum(sums) / max(1, sum(tokens)))

    async def models(self) -> dict:
        """``GET /v1/models``: the served checkpoint, its version and the load count."""
        return await self._request("GET", "/v1/models")

    # ------------------------------------------------------------------------------------------------

    async def _discover(self) -> None:
        """Learn the served model name (vLLM requires it in each request) and whether the server is a
        raftflow generator (which reports per-sample token counts; others are asked for logprobs)."""
        if self._raftflow_server is not None:
            return
        answer = await self.models()
        with unexpected_answer(COMPONENT, self.base_url, "an OpenAI-compatible server (GET /v1/models)"):
            cards = answer.get("data") or [{}]
            self._model = self._model or cards[0].get("id")
            self._raftflow_server = cards[0].get("owned_by") == "raftflow"

    async def _complete(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        body: dict[str, Any] = {
            "model": self._model,
            "prompt": prompts,
            "n": n,
            **params.model_dump(exclude_none=True),
        }
        if self._raftflow_server:
            body["prompt_format"] = self.prompt_format
            body["return_token_ids"] = True  # the sampled ids, for log-probabilities of what was sampled
        else:
            body["prompt"] = [self._render_here(prompt) for prompt in prompts]
            body.update(self._stops_here(params).model_dump(include={"stop"}, exclude_none=True))
            body["logprobs"] = 0  # so each choice lists its tokens: the only per-sample count vLLM gives
        payload = await self._request("POST", "/v1/completions", json=body)
        with unexpected_answer(COMPONENT, self.base_url, "an OpenAI-compatible completions server"):
            choices = sorted(payload.get("choices", []), key=lambda choice: choice["index"])
            samples = [
                Sample(
                    text=choice["text"],
                    finish_reason=choice.get("finish_reason") or "length",
                    completion_tokens=_completion_tokens(choice),
                    token_ids=choice.get("token_ids"),
                )
                for choice in choices
            ]
        if len(choices) != len(prompts) * n:
            raise ComponentMisbehaved(
                COMPONENT,
                self.base_url,
                "an OpenAI-compatible completions server",
                detail=f"{len(choices)} choices for {len(prompts)} prompts x n={n}",
            )
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _stops_here(self, params: SamplingParams) -> SamplingParams:
        """What a raftflow generator does for the format, done here for another server: hh without
        stop strings of the caller's own stops at the next turn."""
        if params.stop is None and self.prompt_format == "hh":
            return params.model_copy(update={"stop": default_stop("hh")})
        return params

    def _render_here(self, prompt: str) -> str:
        if self.prompt_format in ("raw", "hh"):
            return render_prompt(prompt, self.prompt_format)
        raise ValueError(
            f"prompt_format {self.prompt_format!r} needs the model's tokenizer: {self.base_url} is not a "
            "raftflow generator, so use 'hh' or 'raw' (or put a raftflow generator in front of it)"
        )

    async def _request(self, method: str, path: str, json: dict | None = None) -> dict:
        return await self._service.request(method, path, json)


def _completion_tokens(choice: dict) -> int:
    if "completion_tokens" in choice:
        return int(choice["completion_tokens"])
    return len((choice.get("logprobs") or {}).get("tokens") or [])
