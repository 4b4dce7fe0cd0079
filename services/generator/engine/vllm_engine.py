"""Sampling with vLLM (``--backend vllm``): raftflow's API in front, a vLLM OpenAI server behind.

The generator starts vLLM from vLLM's own environment (vllm_server.py) or attaches to a running one
(``--vllm-url``), and keeps every route the orchestrator and clients use: completions with ``n`` and
raftflow's ``min_tokens``, chat completions, ``/v1/logprobs``, ``/v1/load``, ``/v1/models``, TGI's
routes, auth, limits and telemetry. What vLLM does differently is handled here:

- **Prompts** are rendered and tokenized in this process (prompt_codec: the one conversation
  contract) and sent to vLLM as token ids, so vLLM conditions on exactly the tokens the transformers
  engine and the trainer use, and never applies a template of its own.
- **Hot reload never mixes policies.** A request enters through a gate; a load closes the gate, waits
  for the requests in flight (each response names the checkpoint that produced it), brackets the swap
  with vLLM's ``/pause?mode=wait`` and ``/resume`` (for other clients of an attached server), and:
  full checkpoints go through ``POST /collective_rpc {"method": "reload_weights"}`` then
  ``/reset_prefix_cache`` (a cached prefix computed by the old weights must not serve the new); LoRA
  adapter checkpoints load with ``/v1/load_lora_adapter`` under a versioned name (one name reloaded
  in place is re-read per request in some vLLM versions) and the previous adapter is unloaded, so a
  LoRA policy never has to be merged. A checkpoint is checked (architecture, weight names and shapes
  against the served one) before vLLM's weights are touched: a reload cannot be undone half-way.
- **The KL reference, and log-probabilities vLLM cannot give.** vLLM holds one set of weights, and its
  prompt log-probabilities crash the engine (CPU) or map adapters wrongly (GPU) when LoRA is enabled
  (vllm-project/vllm#29955, #16668). So ``/v1/logprobs`` runs in vLLM for the full checkpoint it
  serves with LoRA off, and otherwise in this process (the transformers engine, one model per role,
  adapters merged on load): a reference vLLM does not hold (the initial policy after the first
  reload), and everything when LoRA is on.
- **Seeds.** On CPU, a per-request seed kills vLLM's engine, so request seeds are not forwarded there:
  a seeded request's samples then depend on the engine seed and what else is batched with it (they
  are not reproducible request by request). On CUDA the seed is forwarded. ``min_tokens`` (raftflow's
  LMFlow-style length draw) is drawn from the request's seed either way, so lengths are reproducible.
- **Log-probabilities.** Sequence log-probabilities (``/v1/logprobs``) come from vLLM's prompt
  log-probabilities of prompt + response (the model's own distribution). Sampled tokens' logprobs are
  under the sampling distribution (the server runs with ``--logprobs-mode processed_logprobs``).
- **Cancellation.** A request cancelled here (its client disconnected: raftflow.server.disconnect)
  is cancelled inside its ``httpx`` call, which closes that connection, and vLLM aborts a request
  whose client left (its completions route races the work against the disconnect,
  ``with_cancellation``). So nothing here may swallow ``CancelledError`` or shield the call, and the
  gate's ``finally`` lets a load go on at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from raftflow.checkpoints import CheckpointRejected, check_checkpoint, safetensors_shapes
from raftflow.clients.errors import ComponentUnavailable
from raftflow.conversation import recorded_format
from raftflow.modeling import checkpoint_version, load_tokenizer, resolve_device
from raftflow.processes import ServiceProcess
from raftflow.schemas.generation import draw_max_tokens
from raftflow.seeds import fresh_seed
from services.generator.engine.prompt_codec import PromptCodec
from services.generator.engine.sample_text import without_partial_character
from services.generator.engine.types import (
    BackendRejected,
    ContextLengthExceeded,
    FinishReason,
    GeneratedSample,
    GenerationJob,
    GenerationOutput,
    LoadFailed,
    LogprobsOutput,
    ModelChoice,
    ModelState,
    NoReferenceModel,
    ScoringJob,
    TokenLogprobs,
    UnsupportedOperation,
    check_context,
)
from services.generator.engine.vllm_server import SERVED_NAME, launch_vllm, log_dir_for
from services.generator.settings import GeneratorSettings
from services.generator.telemetry import GeneratorTelemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedPolicy:
    """What vLLM serves now, as one immutable value a request captures at its start."""

    checkpoint: str
    version: str
    model_name: str
    """The name requests ask vLLM for: the base, or the current adapter's versioned name."""
    codec: PromptCodec
    loaded_at: float
    adapter: bool = False


class RequestGate:
    """Many requests at once, or one load alone: a load waits for the requests in flight and holds
    new ones back until it is done (an async reader-writer lock that favours the writer)."""

    def __init__(self) -> None:
        self._condition = asyncio.Condition()
        self._active = 0
        self._closed = False

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        async with self._condition:
            await self._condition.wait_for(lambda: not self._closed)
            self._active += 1
        try:
            yield
        finally:
            async with self._condition:
                self._active -= 1
                self._condition.notify_all()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._condition:
            await self._condition.wait_for(lambda: not self._closed)
            self._closed = True
            await self._condition.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            async with self._condition:
                self._closed = False
                self._condition.notify_all()


class VLLMEngine:
    def __init__(self, settings: GeneratorSettings, telemetry: GeneratorTelemetry) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._on_gpu = resolve_device(settings.device).type == "cuda"
        self._forward_seed = (
            settings.vllm_forward_seed if settings.vllm_forward_seed is not None else self._on_gpu
        )
        self._process: ServiceProcess | None = None
        self._url = (settings.vllm_url or "").rstrip("/")
        self._http: httpx.AsyncClient | None = None
        self._gate = RequestGate()
        self._load_lock = asyncio.Lock()
        self._served: ServedPolicy | None = None
        self._base: ServedPolicy | None = None
        self._load_count = 0
        self._asleep = False
        self._context_length: int | None = None
        self._weights = ""
        """The full checkpoint whose weights vLLM holds now (adapters apply on top of these)."""
        self._reference_path: str | None = None
        self._reference_state: ModelState | None = None
        self._scorers: dict[str, Any] = {}
        """In-process TransformersEngines for log-probabilities vLLM cannot compute, by role."""

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start (or reach) vLLM and wait until it serves; the port opens only after that."""
        if not self._url:
            self._process, self._url = launch_vllm(self._settings, log_dir_for(self._settings), self._on_gpu)
            log.info("starting vLLM at %s (log %s)", self._url, self._process.log_path)
            try:
                await asyncio.to_thread(self._process.wait_healthy, self._settings.vllm_startup_timeout)
            except BaseException:
                self._process.stop()
                raise
        headers = (
            {"Authorization": f"Bearer {self._settings.vllm_api_key}"} if self._settings.vllm_api_key else {}
        )
        self._http = httpx.AsyncClient(
            base_url=self._url, headers=headers, timeout=self._settings.vllm_timeout
        )
        card = await self._wait_for_models()
        self._context_length = card.get("max_model_len")
        checkpoint = self._settings.model or card.get("root") or card["id"]
        self._base = self._served = await asyncio.to_thread(
            _policy, checkpoint, card["id"], self._settings.trust_remote_code
        )
        self._weights = checkpoint
        self._load_count = 1
        self._telemetry.loads.labels(outcome="loaded").inc()
        if self._settings.reference_model:
            await self.load_reference(self._settings.reference_model)
        log.info("serving %s through vLLM at %s", checkpoint, self._url)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        for scorer in self._scorers.values():
            await scorer.close()
        if self._process is not None:
            await asyncio.to_thread(self._process.stop, 30.0)

    async def ready(self) -> bool:
        if self._served is None or self._http is None:
            return False
        if self._process is not None and not self._process.alive():
            return False
        try:
            return (await self._http.get("/health", timeout=5.0)).status_code == 200
        except httpx.HTTPError:
            return False

    def state(self) -> ModelState:
        return self._state_of(self._current())

    # -- sampling --------------------------------------------------------------------------------

    async def generate(self, job: GenerationJob) -> GenerationOutput:
        if job.typical_p != 1.0:
            raise BackendRejected(
                "typical_p is not supported by the vllm backend (vLLM has no typical sampling)"
            )
        async with self._gate.request():
            if self._asleep:
                raise ComponentUnavailable(
                    "vllm", self._url, 0, RuntimeError("asleep: POST /v1/wake_up first")
                )
            served = self._current()  # this request's policy: loads wait for it to finish
            if job.echo_logprobs and self._settings.vllm_enable_lora:
                raise BackendRejected(
                    "echo with logprobs is not available with GENERATOR_VLLM_ENABLE_LORA: vLLM's prompt "
                    "log-probabilities crash its engine when LoRA is on (vllm-project/vllm#29955)"
                )
            texts, prompt_ids = await asyncio.to_thread(
                served.codec.encode_prompts, job.prompts, job.prompt_format, job.truncate
            )
            stops = served.codec.stop_strings(job.stop, job.prompt_format)
            check_context(prompt_ids, job.max_new_tokens, self._context_length)
            seed = job.seed if job.seed is not None else fresh_seed()
            rows = job.n if job.do_sample else 1  # greedy rows are identical: decode one, copy it
            body: dict[str, Any] = {
                "model": served.model_name,
                "prompt": prompt_ids,
                "n": rows,
                "max_tokens": draw_max_tokens(job.min_new_tokens, job.max_new_tokens, seed),
                "temperature": job.temperature if job.do_sample else 0.0,
                "top_p": job.top_p if job.do_sample else 1.0,
                "top_k": (job.top_k or -1) if job.do_sample else -1,
                "repetition_penalty": job.repetition_penalty,
                "stop": stops,
                "return_token_ids": True,
                "skip_special_tokens": True,
            }
            if self._forward_seed:
                body["seed"] = seed
            if job.logprobs:
                body["logprobs"] = job.top_logprobs
            if job.echo_logprobs:
                body["prompt_logprobs"] = job.top_logprobs
            started = time.perf_counter()
            answer = await self._post("/v1/completions", body)
            self._telemetry.observe_batch(len(prompt_ids) * rows, time.perf_counter() - started)
        choices = sorted(answer["choices"], key=lambda choice: choice["index"])
        tokenizer = served.codec.tokenizer
        samples = [
            [_sample(choice, tokenizer, job) for choice in choices[i * rows : (i + 1) * rows]]
            for i in range(len(prompt_ids))
        ]
        if not job.do_sample:
            samples = [group * job.n for group in samples]
        prompt_logprobs = None
        if job.echo_logprobs:
            prompt_logprobs = [
                _prompt_logprobs(choices[i * rows], ids, tokenizer, job.top_logprobs)
                for i, ids in enumerate(prompt_ids)
            ]
        return GenerationOutput(
            model=self._state_of(served),
            seed=seed,
            prompt_tokens=[len(ids) for ids in prompt_ids],
            samples=samples,
            prompt_texts=texts,
            prompt_logprobs=prompt_logprobs,
            prompt_ids=prompt_ids,
        )

    async def logprobs(self, job: ScoringJob) -> LogprobsOutput:
        """vLLM scores ``prompt + response`` as a prompt (``prompt_logprobs``, one new token) and the
        response positions are summed: the model's own distribution, as the transformers engine's.
        Only for the weights vLLM holds with LoRA off; anything else is scored in process."""
        if job.model == "reference" and self._reference_path is None:
            raise NoReferenceModel()
        async with self._gate.request():
            served = self._current()
            path = served.checkpoint if job.model == "current" else (self._reference_path or "")
            if self._settings.vllm_enable_lora or not _same_checkpoint(path, self._weights):
                # vLLM's prompt log-probabilities crash its engine (CPU) or map adapters wrongly
                # (GPU) when LoRA is on (vllm-project/vllm#29955, #16668); and it holds one model.
                scorer = await self._scorer(job.model, path)
                return await scorer.logprobs(replace(job, model="current"))
            pairs = await asyncio.to_thread(served.codec.encode_scoring, job)
            for index, (prompt_ids, response_ids) in enumerate(pairs):
                if not prompt_ids:
                    raise BackendRejected(f"prompt {index} encodes to no tokens: nothing to condition on")
                if self._context_length and len(prompt_ids) + len(response_ids) + 1 > self._context_length:
                    raise ContextLengthExceeded(
                        index, len(prompt_ids), len(response_ids), self._context_length
                    )
            scored = [i for i, (_, response_ids) in enumerate(pairs) if response_ids]
            sums = [0.0] * len(pairs)
            if scored:
                answer = await self._post(
                    "/v1/completions",
                    {
                        "model": served.model_name,
                        "prompt": [pairs[i][0] + pairs[i][1] for i in scored],
                        "max_tokens": 1,
                        "temperature": 0.0,
                        "prompt_logprobs": 0,
                    },
                )
                for choice in answer["choices"]:
                    index = scored[choice["index"]]
                    prompt_ids, response_ids = pairs[index]
                    sums[index] = _sum_logprobs(
                        choice["prompt_logprobs"], prompt_ids + response_ids, len(prompt_ids)
                    )
        return LogprobsOutput(model=self._state_of(served), logprobs=sums, tokens=[len(r) for _, r in pairs])

    # -- checkpoints -----------------------------------------------------------------------------

    async def load(self, path: str) -> tuple[ModelState, ModelState]:
        async with self._load_lock:
            previous = self.state()
            started = time.perf_counter()
            try:
                is_adapter = (Path(path) / "adapter_config.json").is_file()
                new = await asyncio.to_thread(self._prepare, path, is_adapter)
                async with self._gate.exclusive(), self._paused():
                    if is_adapter:
                        await self._swap_adapter(path, new)
                    else:
                        await self._reload_weights(path)
                    self._served = new
                    self._load_count += 1
            except ComponentUnavailable:
                self._telemetry.loads.labels(outcome="failed").inc()
                raise
            except Exception as exc:
                self._telemetry.loads.labels(outcome="failed").inc()
                log.warning("load of %s failed: %s", path, exc)
                raise LoadFailed(path, exc) from exc
            self._telemetry.loads.labels(outcome="loaded").inc()
            self._telemetry.load_seconds.observe(time.perf_counter() - started)
            log.info("serving %s (load %d) through vLLM", new.checkpoint, self._load_count)
            return previous, self.state()

    def reference_state(self) -> ModelState | None:
        if self._reference_path is None:
            return None
        return self._reference_state

    async def load_reference(self, path: str) -> ModelState:
        """The reference of ``/v1/logprobs``. vLLM scores it itself while it holds its weights as the
        served policy (the start-up base before the first reload); otherwise, as vLLM holds one set of
        weights, it runs in this process with the transformers engine."""
        if _same_checkpoint(path, self._weights) and not self._settings.vllm_enable_lora:
            state = self._state_of(self._current())
        else:
            state = (await self._scorer("reference", path)).state()
        self._reference_path, self._reference_state = path, state
        return state

    async def _scorer(self, role: ModelChoice, path: str) -> Any:
        """The in-process transformers engine scoring ``role`` with ``path`` (started or reloaded as
        needed; one per role, so KL estimates do not reload a model per call)."""
        from services.generator.engine.transformers_engine import TransformersEngine

        scorer = self._scorers.get(role)
        if scorer is None:
            settings = self._settings.model_copy(update={"model": path, "reference_model": None})
            scorer = TransformersEngine(settings, self._telemetry)
            try:
                await scorer.start()
            except Exception as exc:
                await scorer.close()
                raise LoadFailed(path, exc) from exc
            self._scorers[role] = scorer
        elif not (
            _same_checkpoint(scorer.state().checkpoint, path)
            and scorer.state().version == checkpoint_version(path)
        ):
            await scorer.load(path)
        return scorer

    async def sleep(self, level: int = 1) -> None:
        """Hand vLLM's GPU memory to a trainer on the same GPU (level 1: weights offloaded to CPU
        memory; level 2: discarded, so load a checkpoint after waking). Waits for requests in flight;
        sampling while asleep is a 503."""
        if not (self._on_gpu and self._settings.vllm_sleep_mode):
            raise UnsupportedOperation(
                "sleep needs vLLM on a GPU started with GENERATOR_VLLM_SLEEP_MODE=true "
                "(CPU has no sleep mode)"
            )
        async with self._gate.exclusive():
            await self._post(f"/sleep?level={level}", None)
            self._asleep = True

    async def wake_up(self) -> None:
        if not (self._on_gpu and self._settings.vllm_sleep_mode):
            raise UnsupportedOperation(
                "wake_up needs vLLM on a GPU started with GENERATOR_VLLM_SLEEP_MODE=true "
                "(CPU has no sleep mode)"
            )
        async with self._gate.exclusive():
            await self._post("/wake_up", None)
            self._asleep = False

    # -- internals -------------------------------------------------------------------------------

    def _prepare(self, path: str, is_adapter: bool) -> ServedPolicy:
        """Everything that can fail before vLLM is touched: the checkpoint's check and its tokenizer."""
        assert self._base is not None
        if is_adapter:
            if not self._settings.vllm_enable_lora:
                raise CheckpointRejected(
                    f"{path} is a LoRA adapter: start the generator with GENERATOR_VLLM_ENABLE_LORA=true "
                    "(vLLM's --enable-lora) to serve adapters, or merge it"
                )
            tokenizer_dir = (
                path if (Path(path) / "tokenizer_config.json").is_file() else self._base.checkpoint
            )
            codec = PromptCodec(load_tokenizer(tokenizer_dir, padding_side="left"), self._base.codec.recorded)
            name = f"raftflow-adapter-{self._load_count + 1}"
            return ServedPolicy(path, checkpoint_version(path), name, codec, time.time(), adapter=True)
        check_checkpoint(path, self._settings.load_roots, hub_ids=False)
        expected = safetensors_shapes(self._base.checkpoint) if Path(self._base.checkpoint).is_dir() else None
        found = safetensors_shapes(path)
        if expected is not None and found is not None:
            differs = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
            if differs:
                raise CheckpointRejected(
                    f"{path} is not the served architecture ({self._base.checkpoint}): weight {differs[0]} "
                    f"is {found.get(differs[0])} there, {expected.get(differs[0])} here; vLLM reloads "
                    "weights in place, so start a new generator for another architecture"
                )
        return _policy(path, SERVED_NAME, self._settings.trust_remote_code)

    async def _reload_weights(self, path: str) -> None:
        await self._post(
            "/collective_rpc",
            {"method": "reload_weights", "kwargs": {"weights_path": str(Path(path).resolve())}},
        )
        await self._post("/reset_prefix_cache", None)
        self._weights = path
        served = self._current()
        if served.adapter:  # back to full weights: the adapter no longer applies
            await self._unload_adapter(served.model_name)

    async def _swap_adapter(self, path: str, new: ServedPolicy) -> None:
        """An adapter applies to whatever weights vLLM holds: after a full reload to another
        checkpoint, the start-up base comes back first (its adapters were trained on it)."""
        assert self._base is not None
        if not _same_checkpoint(self._weights, self._base.checkpoint):
            await self._post(
                "/collective_rpc",
                {"method": "reload_weights", "kwargs": {"weights_path": self._base.checkpoint}},
            )
            await self._post("/reset_prefix_cache", None)
            self._weights = self._base.checkpoint
        await self._post(
            "/v1/load_lora_adapter", {"lora_name": new.model_name, "lora_path": str(Path(path).resolve())}
        )
        served = self._current()
        if served.adapter:
            await self._unload_adapter(served.model_name)

    async def _unload_adapter(self, name: str) -> None:
        try:
            await self._post("/v1/unload_lora_adapter", {"lora_name": name})
        except (ComponentUnavailable, BackendRejected) as exc:  # a leftover adapter costs memory, not samples
            log.warning("could not unload adapter %s: %s", name, exc)

    @asynccontextmanager
    async def _paused(self) -> AsyncIterator[None]:
        """vLLM's own pause around a swap, for clients of an attached server that bypass our gate."""
        await self._post("/pause?mode=wait", None)
        try:
            yield
        finally:
            await self._post("/resume", None)

    async def _post(self, route: str, body: dict[str, Any] | None) -> dict[str, Any]:
        assert self._http is not None
        try:
            response = await self._http.post(route, json=body)
        except httpx.HTTPError as exc:  # the routes answer 503
            raise ComponentUnavailable("vllm", f"{self._url}{route}", 0, exc) from exc
        if 400 <= response.status_code < 500:
            raise BackendRejected(f"vLLM rejected {route}: {response.status_code} {response.text[:500]}")
        if response.status_code >= 500:
            cause = RuntimeError(f"{response.status_code} {response.text[:500]}")
            raise ComponentUnavailable("vllm", f"{self._url}{route}", 0, cause)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            return {}

    async def _wait_for_models(self) -> dict[str, Any]:
        """The served model's card; an attached server may still be loading, so retry until the timeout."""
        assert self._http is not None
        deadline = time.monotonic() + self._settings.vllm_startup_timeout
        while True:
            try:
                response = await self._http.get("/v1/models", timeout=5.0)
                if response.status_code == 200 and response.json().get("data"):
                    return response.json()["data"][0]
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"vLLM at {self._url} did not serve a model in {self._settings.vllm_startup_timeout}s"
                )
            await asyncio.sleep(1.0)

    def _current(self) -> ServedPolicy:
        if self._served is None:
            raise RuntimeError("vLLM is not serving yet")
        return self._served

    def _state_of(self, served: ServedPolicy) -> ModelState:
        version = served.version
        return ModelState(
            name=served.checkpoint if version == served.checkpoint else f"{served.checkpoint}@{version}",
            checkpoint=served.checkpoint,
            version=version,
            load_count=self._load_count,
            loaded_at=served.loaded_at,
            context_length=self._context_length,
            dtype=self._settings.vllm_dtype,
            device=f"vllm-{'cuda' if self._on_gpu else 'cpu'}",
        )


def _policy(checkpoint: str, model_name: str, trust_remote_code: bool) -> ServedPolicy:
    """The served policy's identity and prompt codec (its tokenizer, the format its training recorded)."""
    from transformers import AutoConfig

    tokenizer = load_tokenizer(checkpoint, padding_side="left", trust_remote_code=trust_remote_code)
    config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)
    version = checkpoint_version(checkpoint) if Path(checkpoint).is_dir() else checkpoint
    return ServedPolicy(
        checkpoint=checkpoint,
        version=version,
        model_name=model_name,
        codec=PromptCodec(tokenizer, recorded_format(config)),
        loaded_at=time.time(),
    )


def _check_adapter_base(path: str, base: str) -> None:
    """An adapter trained on another local checkpoint than the served base would apply to the wrong
    weights: refuse it (a hub id or a moved directory cannot be compared, and is let through)."""
    try:
        recorded = json.loads((Path(path) / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise CheckpointRejected(f"{path}/adapter_config.json does not load: {exc}") from exc
    if recorded and Path(recorded).is_dir() and Path(base).is_dir() and not _same_checkpoint(recorded, base):
        raise CheckpointRejected(
            f"{path} is an adapter of {recorded}, but this generator's vLLM serves {base}: adapters load "
            "on the base the generator started with"
        )


def _same_checkpoint(a: str, b: str) -> bool:
    return a == b or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


def _sample(choice: dict[str, Any], tokenizer: Any, job: GenerationJob) -> GeneratedSample:
    # vLLM's ids of the sample (return_token_ids): EOS and a stop string's tokens included.
    sampled = choice.get("token_ids")
    token_ids = [int(token) for token in sampled] if sampled is not None else []
    stop_reason = choice.get("stop_reason")
    text = choice["text"]
    finish: FinishReason
    if choice.get("finish_reason") == "length":
        finish = "length"
        text = without_partial_character(text)
    elif isinstance(stop_reason, str):
        finish = "stop_sequence"
    else:
        finish = "eos_token"
    logprobs = top = None
    texts: list[str] = []
    if job.logprobs and choice.get("logprobs"):
        detail = choice["logprobs"]
        texts = list(detail.get("tokens") or [])
        logprobs = [float(v) if v is not None else 0.0 for v in detail.get("token_logprobs") or []]
        top = [dict(entry or {}) for entry in detail.get("top_logprobs") or []] if job.top_logprobs else None
    elif job.logprobs:
        texts = [tokenizer.decode([token]) for token in token_ids]
    special = set(getattr(tokenizer, "all_special_ids", []) or []) if job.logprobs else set()
    return GeneratedSample(
        text=text,
        finish_reason=finish,
        completion_tokens=len(token_ids),
        stop=stop_reason if isinstance(stop_reason, str) else None,
        token_ids=token_ids if sampled is not None else None,
        token_texts=texts,
        token_special=[token in special for token in token_ids] if job.logprobs else [],
        logprobs=logprobs,
        top_logprobs=top,
    )


def _entry_logprob(entry: dict[str, Any], token: int) -> float:
    value = entry[str(token)] if str(token) in entry else entry[token]
    return float(value["logprob"] if isinstance(value, dict) else value)


def _sum_logprobs(prompt_logprobs: list[dict[str, Any] | None], ids: list[int], start: int) -> float:
    """Sum of the log-probabilities vLLM gave ``ids[start:]`` as prompt tokens."""
    return sum(_entry_logprob(prompt_logprobs[i] or {}, ids[i]) for i in range(start, len(ids)))


def _prompt_logprobs(choice: dict[str, Any], ids: list[int], tokenizer: Any, top_n: int) -> TokenLogprobs:
    """OpenAI's echo logprobs for a prompt, from vLLM's ``prompt_logprobs`` (the first token has none;
    each position's entry holds the actual token plus the ``top_n`` most likely, ranked from 1)."""
    entries = choice.get("prompt_logprobs") or [None] * len(ids)
    tokens = [tokenizer.decode([token]) for token in ids]
    logprobs: list[float | None] = [None] + [
        _entry_logprob(entries[i] or {}, ids[i]) for i in range(1, len(ids))
    ]
    if top_n <= 0:
        return TokenLogprobs(tokens=tokens, logprobs=logprobs, top=None)
    top: list[dict[str, float]] = [{}]
    for entry in entries[1:]:
        ranked = sorted(
            ((int(token), value) for token, value in (entry or {}).items() if isinstance(value, dict)),
            key=lambda item: item[1].get("rank") or 0,
        )
        top.append(
            {
                tokenizer.decode([token]): float(value["logprob"])
                for token, value in ranked
                if 0 < (value.get("rank") or 0) <= top_n
            }
        )
    return TokenLogprobs(tokens=tokens, logprobs=logprobs, top=top)
