"""The generator's engine and the rewarder's scorer run in this process, behind the loop's ``Sampler``
and ``Scorer`` protocols: ``raftflow sample --model`` / ``raftflow score --model|--function`` use
them instead of a service URL, and ``bench/iteration.py`` compares them with the services.

They are the services' own code (same rendering, batching, seeding), so a file sampled here and one
sampled through a generator on the same checkpoint follow the same rules. Imported only when a command
needs them: torch and the model load are slow.
"""

from __future__ import annotations

from pathlib import Path

from raftflow.conversation import PromptFormat
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.schemas.reward import PromptResponse


class LocalSampler:
    """The generator's transformers engine, called directly (no HTTP). Also a policy server: it loads
    a checkpoint when asked (the loop's ``ensure_loaded``)."""

    def __init__(self, engine, prompt_format: PromptFormat = "raw") -> None:
        self.engine = engine
        self.prompt_format: PromptFormat = prompt_format

    @classmethod
    async def start(cls, model: str, prompt_format: PromptFormat = "raw") -> LocalSampler:
        """The device and threads come from the shared settings (``RAFTFLOW_DEVICE``,
        ``RAFTFLOW_TORCH_THREADS``), as for the services."""
        from services.generator.engine.transformers_engine import TransformersEngine
        from services.generator.settings import GeneratorSettings
        from services.generator.telemetry import GeneratorTelemetry

        settings = GeneratorSettings(model=model)
        engine = TransformersEngine(settings, GeneratorTelemetry())
        await engine.start()
        return cls(engine, prompt_format)

    async def close(self) -> None:
        await self.engine.close()

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        from services.generator.engine.types import GenerationJob

        out = await self.engine.generate(
            GenerationJob(
                prompts=prompts,
                n=n,
                max_new_tokens=params.max_tokens,
                min_new_tokens=params.min_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=max(params.top_k, 0),
                seed=params.seed,
                stop=params.stop,
                prompt_format=self.prompt_format,
            )
        )
        return [
            [
                Sample(
                    text=s.text,
                    finish_reason=_openai_reason(s.finish_reason),
                    completion_tokens=s.completion_tokens,
                    token_ids=s.token_ids,
                )
                for s in row
            ]
            for row in out.samples
        ]

    async def ensure_loaded(self, checkpoint: str) -> None:
        if self.engine.state().checkpoint not in (checkpoint, str(Path(checkpoint).resolve())):
            await self.engine.load(checkpoint)


class LocalScorer:
    """The rewarder's scoring core (model or ``module:function`` source, dynamic batcher), in process."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer

    @classmethod
    async def start(
        cls,
        model: str | None = None,
        function: str | None = None,
        prompt_format: PromptFormat = "auto",
    ) -> LocalScorer:
        from services.rewarder.app import start_scorer
        from services.rewarder.settings import RewarderSettings
        from services.rewarder.telemetry import RewarderTelemetry

        settings = RewarderSettings(model=model, function=function, format=prompt_format)
        return cls(await start_scorer(settings, RewarderTelemetry()))

    async def close(self) -> None:
        await self.scorer.stop()

    async def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        pairs = [PromptResponse(prompt=p, response=r) for p, r in zip(prompts, responses, strict=True)]
        return await self.scorer.score(self.scorer.prepare_pairs(pairs))


def _openai_reason(reason: str) -> str:
    """The engine's TGI-style reasons folded the way the OpenAI route folds them."""
    return "length" if reason == "length" else "stop"
