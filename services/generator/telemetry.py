"""Prometheus telemetry of one generator, on its own registry (two generators in one test process must
not share counters; see raftflow.server.prometheus)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class GeneratorTelemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.in_progress = Gauge(
            "generator_generations_in_progress",
            "Generation requests being served now (queued or running).",
            registry=self.registry,
        )
        self.samples = Counter("generator_samples", "Samples returned.", registry=self.registry)
        self.prompt_tokens = Counter(
            "generator_prompt_tokens", "Prompt tokens processed (once per prompt).", registry=self.registry
        )
        self.completion_tokens = Counter(
            "generator_completion_tokens", "New tokens generated and returned.", registry=self.registry
        )
        self.batch_rows = Histogram(
            "generator_batch_rows",
            "Rows (prompt x sample) per model.generate call; its _count is the number of calls.",
            buckets=_ROW_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "generator_batch_seconds",
            "Wall time of one model.generate call.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cancelled = Counter(
            "generator_cancelled_requests",
            "Requests whose client disconnected before the answer, by work ('generate', 'logprobs'): "
            "their queued batches were dropped and a running generate call stopped at its next token.",
            ["work"],
            registry=self.registry,
        )
        self.stopped_batches = Counter(
            "generator_stopped_batches",
            "model.generate calls stopped before their end because their request was cancelled.",
            registry=self.registry,
        )
        self.loads = Counter(
            "generator_model_loads", "Checkpoint loads by outcome.", ["outcome"], registry=self.registry
        )
        self.load_seconds = Histogram(
            "generator_model_load_seconds",
            "Time to load a checkpoint.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_seconds.observe(seconds)

    def observe_output(self, prompt_tokens: int, samples: int, completion_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.samples.inc(samples)
        self.completion_tokens.inc(completion_tokens)
