"""Sampling forwarded to a text-generation-inference server (``--backend tgi --tgi-url URL``).

For a GPU box already running TGI: this service keeps the raftflow API (OpenAI completions with n and
min_tokens, /v1/models, telemetry) and fans each request out through
:class:`raftflow.clients.tgi_sampler.TGISamplerClient`. TGI owns the weights, so hot reload is not
available here (restart TGI with the new checkpoint), and prompt token counts are unknown (reported as 0).
"""

from __future__ import annotations

import time

import httpx

from raftflow.clients.errors import ComponentRejected
from raftflow.clients.tgi_sampler import TGISamplerClient
from raftflow.conversation import default_stop, render_prompt
from raftflow.schemas.generation import SamplingParams
from raftflow.seeds import fresh_seed
from services.generator.engine.types import (
    BackendRejected,
    GeneratedSample,
    GenerationJob,
    GenerationOutput,
    LogprobsOutput,
    ModelState,
    PromptFormatRejected,
    ScoringJob,
    UnsupportedOperation,
)
from services.generator.settings import GeneratorSettings
from services.generator.telemetry import GeneratorTelemetry

_HEALTH_TIMEOUT_S = 5.0


class TGIEngine:
    def __init__(self, settings: GeneratorSettings, telemetry: GeneratorTelemetry) -> None:
        assert settings.tgi_url is not None  # GeneratorSettings enforces it for this backend
        self._url = settings.tgi_url.rstrip("/")
        self._settings = settings
        self._telemetry = telemetry
        self._client = TGISamplerClient(
            self._url,
            api_token=settings.tgi_api_token,
            timeout=settings.tgi_timeout,
            retry_seconds=settings.tgi_retry_seconds,
            concurrency=settings.tgi_concurrency,
            component="tgi",
        )
        headers = {"Authorization": f"Bearer {settings.tgi_api_token}"} if settings.tgi_api_token else {}
        self._http = httpx.AsyncClient(base_url=self._url, headers=headers, timeout=_HEALTH_TIMEOUT_S)
        self._info: dict = {}
        self._started = time.time()

    async def start(self) -> None:
        """Read TGI's /info if it is up; a TGI still loading its model is fine (/health says 503)."""
        await self._refresh_info()

    async def close(self) -> None:
        await self._client.aclose()
        await self._http.aclose()

    async def ready(self) -> bool:
        try:
            healthy = (await self._http.get("/health")).status_code == 200
        except httpx.HTTPError:
            return False
        if healthy and not self._info:
            await self._refresh_info()
        return healthy

    def state(self) -> ModelState:
        model_id = self._info.get("model_id") or self._url
        version = self._info.get("model_sha") or model_id
        return ModelState(
            name=model_id if version == model_id else f"{model_id}@{version}",
            checkpoint=model_id,
            version=version,
            load_count=1,
            loaded_at=self._started,
            context_length=self._info.get("max_total_tokens"),
            dtype=str(self._info.get("model_dtype", "unknown")),
            device=str(self._info.get("model_device_type", "tgi")),
        )

    async def load(self, path: str) -> tuple[ModelState, ModelState]:
        raise UnsupportedOperation(
            f"the tgi backend serves whatever model the TGI server at {self._url} was started with; "
            f"restart TGI with {path!r} instead"
        )

    def reference_state(self) -> ModelState | None:
        return None

    async def load_reference(self, path: str) -> ModelState:
        raise UnsupportedOperation(
            f"the tgi backend cannot load a reference model ({path!r}): TGI serves one model and "
            "does not score given responses"
        )

    async def sleep(self, level: int = 1) -> None:
        raise UnsupportedOperation(
            "sleep mode is vLLM's: the tgi backend has none (use --backend vllm on a GPU)"
        )

    async def wake_up(self) -> None:
        raise UnsupportedOperation(
            "sleep mode is vLLM's: the tgi backend has none (use --backend vllm on a GPU)"
        )

    async def logprobs(self, job: ScoringJob) -> LogprobsOutput:
        """TGI's decoder_input_details cannot tell prompt from response tokens reliably, so no KL."""
        raise UnsupportedOperation("the tgi backend does not compute log-probabilities of given responses")

    async def generate(self, job: GenerationJob) -> GenerationOutput:
        state = self.state()
        unsupported = {
            "repetition_penalty": job.repetition_penalty != 1.0,
            "typical_p": job.typical_p != 1.0,
            "truncate": job.truncate is not None,
            "logprobs": job.logprobs,
        }
        if any(unsupported.values()):
            names = ", ".join(name for name, used in unsupported.items() if used)
            raise BackendRejected(f"{names} not forwarded by the tgi backend")
        if job.prompt_format not in ("raw", "hh"):
            raise PromptFormatRejected(
                f"prompt_format {job.prompt_format!r} needs the model's tokenizer, which the tgi backend "
                "does not load: use 'hh' or 'raw', or render the chat template before sending"
            )
        texts = [render_prompt(prompt, job.prompt_format) for prompt in job.prompts]
        seed = job.seed if job.seed is not None else fresh_seed()
        params = SamplingParams(
            max_tokens=job.max_new_tokens,
            min_tokens=job.min_new_tokens,
            temperature=job.temperature if job.do_sample else 0.0,
            top_p=job.top_p,
            top_k=job.top_k,
            seed=seed,
            stop=(job.stop if job.stop is not None else default_stop(job.prompt_format)) or None,
        )
        try:
            groups = await self._client.sample(texts, job.n, params)
        except ComponentRejected as exc:
            raise BackendRejected(f"TGI rejected the request: {exc.detail}") from exc
        samples = [
            [
                GeneratedSample(
                    text=sample.text,
                    finish_reason="length" if sample.finish_reason == "length" else "eos_token",
                    completion_tokens=sample.completion_tokens,
                )
                for sample in group
            ]
            for group in groups
        ]
        return GenerationOutput(
            model=state,
            seed=seed,
            prompt_tokens=[0] * len(job.prompts),
            samples=samples,
            prompt_texts=texts,
        )

    async def _refresh_info(self) -> None:
        try:
            response = await self._http.get("/info")
            if response.status_code == 200:
                self._info = response.json()
        except httpx.HTTPError:
            pass
