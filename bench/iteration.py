"""One RAFT iteration through the services vs the same iteration in one process.

Both sides run ``orchestrator.raft_loop.run_iteration`` with the same tiny models, prompts, K, batch
sizes and training steps; only the backends differ:

- services: generator and rewarder as uvicorn subprocesses over HTTP, the trainer as a Celery worker
  subprocess through Redis (the system Redis, else an embedded one);
- in-process: the same generation engine, reward scorer and SFT job code called directly.

The ratio (services / in-process, target <= 1.10) is what the microservice split costs. Then the
services path runs at three sizes (prompts x K) to show how iteration time grows.

    .venv/bin/python bench/iteration.py [--prompts 16] [--k 4] [--max-new-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAFTFLOW_TORCH_THREADS", "1")

from orchestrator.backends import open_backends  # noqa: E402
from orchestrator.raft_loop import Backends, RunContext, run_iteration  # noqa: E402
from orchestrator.settings import OrchestratorSettings  # noqa: E402
from raftflow.data import write_text2text  # noqa: E402
from raftflow.processes import ServiceProcess, python_module  # noqa: E402
from raftflow.schemas.jobs import JobResult, SFTJob, TrainingConfig  # noqa: E402
from raftflow.schemas.runs import RunRequest, StageProgress  # noqa: E402
from raftflow.server import free_port  # noqa: E402
from raftflow_cli.commands.local_backends import LocalSampler, LocalScorer  # noqa: E402
from raftflow_cli.embedded_redis import EmbeddedRedis, redis_reachable  # noqa: E402
from raftflow_cli.tiny_models import build_models, read_fortunes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class QuietReporter:
    """Keeps only the last iteration's metrics (their ``*_s`` entries are the stage wall times)."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def stage(self, iteration: int, progress: StageProgress) -> None:
        pass

    def iteration_started(self, iteration: int) -> None:
        pass

    def iteration_finished(self, iteration: int, checkpoint: str, metrics: dict[str, float]) -> None:
        self.metrics = metrics


class LocalTrainer:
    async def train(self, job: SFTJob, on_progress) -> JobResult:
        from services.trainer.jobs import run_job

        return await asyncio.to_thread(run_job, job)


def request_for(models: dict[str, Path], prompts_file: Path, prompts: int, k: int, tokens: int) -> RunRequest:
    return RunRequest(
        policy=str(models["policy"]),
        prompts=str(prompts_file),
        prompt_format="raw",  # the in-process sampler below conditions on the prompt as written
        num_iterations=1,
        prompts_per_iteration=prompts,
        k=k,
        max_new_tokens=tokens,
        training=TrainingConfig(epochs=1, learning_rate=1e-3, per_device_batch_size=8, max_length=64),
        seed=0,
    )


Timing = tuple[float, dict[str, float]]  # (seconds, stage wall times)


async def timed_iteration(
    request: RunRequest, backends: Backends, run_dir: Path, overlap: bool = True, chunk: int = 16
) -> Timing:
    reporter = QuietReporter()
    ctx = RunContext(
        run_id=run_dir.name,
        request=request,
        run_dir=run_dir,
        reporter=reporter,
        overlap_scoring=overlap,
        sample_chunk_prompts=chunk,
    )
    start = time.perf_counter()
    await run_iteration(ctx, backends, 0, request.policy, _prompts(request), [])
    seconds = time.perf_counter() - start
    return seconds, {k: v for k, v in reporter.metrics.items() if k.endswith("_s")}


def _prompts(request: RunRequest) -> list[str]:
    from raftflow.data import load_prompts

    return load_prompts(request.prompts)


async def in_process_time(request: RunRequest, models: dict[str, Path], run_dir: Path) -> Timing:

    sampler = await LocalSampler.start(str(models["policy"]), prompt_format="raw")
    scorer = await LocalScorer.start(model=str(models["reward"]))
    backends = Backends(sampler=sampler, scorer=scorer, trainer=LocalTrainer(), policy_server=sampler)
    try:
        return await timed_iteration(request, backends, run_dir)
    finally:
        await scorer.close()
        await sampler.close()


async def services_time(
    request: RunRequest, settings: OrchestratorSettings, run_dir: Path, overlap: bool = True, chunk: int = 16
) -> Timing:
    async with AsyncExitStack() as stack:
        backends = await open_backends(settings, request, stack)
        return await timed_iteration(request, backends, run_dir, overlap, chunk)


def start_stack(tmp: Path, models: dict[str, Path], redis_url: str) -> tuple[list[ServiceProcess], dict]:
    # Auth off on purpose: a loopback-only benchmark stack (services refuse a tokenless start otherwise).
    env = {"REDIS_URL": redis_url, "RAFTFLOW_TORCH_THREADS": "1", "RAFTFLOW_ALLOW_NO_AUTH": "1"}
    processes: list[ServiceProcess] = []
    urls = {}
    for name, module, model in (
        ("generator", "services.generator", models["policy"]),
        ("rewarder", "services.rewarder", models["reward"]),
    ):
        port = free_port()
        proc = ServiceProcess(
            name,
            python_module(module, "--port", str(port), "--model", str(model)),
            tmp / f"{name}.log",
            env=env,
            cwd=REPO,
            health_url=f"http://127.0.0.1:{port}/health",
        ).start()
        processes.append(proc)
        proc.wait_healthy(120)
        urls[name] = f"http://127.0.0.1:{port}"
    processes.append(
        ServiceProcess(
            "trainer", python_module("services.trainer"), tmp / "trainer.log", env=env, cwd=REPO
        ).start()
    )
    return processes, urls


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side; best counts")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="raftflow-bench-iter-"))
    models = build_models(tmp / "models")
    prompts_file = tmp / "prompts.json"
    fortunes = [f for f in read_fortunes() if 20 < len(f) < 200][:512]
    write_text2text(prompts_file, [(" ".join(f.split()[:3]), "") for f in fortunes])

    redis_server = None
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
    if not redis_reachable(redis_url):
        redis_server = EmbeddedRedis(tmp / "redis").start()
        redis_url = redis_server.url
    processes, urls = start_stack(tmp, models, redis_url)
    settings = OrchestratorSettings(
        generator_url=urls["generator"], rewarder_url=urls["rewarder"], redis_url=redis_url, artifacts_dir=tmp
    )
    try:
        request = request_for(models, prompts_file, args.prompts, args.k, args.max_new_tokens)
        await services_time(request, settings, tmp / "warmup")  # first call pays imports/JIT on both sides
        service_runs, local_runs = [], []
        for repeat in range(args.repeats):
            service_runs.append(await services_time(request, settings, tmp / f"svc-{repeat}"))
            local_runs.append(await in_process_time(request, models, tmp / f"local-{repeat}"))
        (service, service_stages), (local, local_stages) = min(service_runs), min(local_runs)
        print(
            f"\nOne RAFT iteration, {args.prompts} prompts x K={args.k}, {args.max_new_tokens} new tokens "
            f"(best of {args.repeats}, {os.cpu_count()} CPUs, 1 torch thread per process)"
        )
        print(f"{'path':<28}{'seconds':>10}")
        print(f"{'services (HTTP + Redis)':<28}{service:>10.2f}")
        print(f"{'in-process':<28}{local:>10.2f}")
        ratio = service / local
        print(f"{'stage (s)':<28}{'services':>10}{'in-process':>12}")
        for key in sorted(service_stages):
            print(f"{key:<28}{service_stages[key]:>10.2f}{local_stages.get(key, float('nan')):>12.2f}")
        print(
            f"services / in-process = {ratio:.3f}  (target <= 1.10: {'met' if ratio <= 1.10 else 'MISSED'})"
        )

        print(f"\nGrowth with size (services path), K={args.k}")
        print(f"{'prompts x K':<14}{'samples':>9}{'seconds':>10}{'s / sample':>12}")
        for size in (args.prompts, 2 * args.prompts, 4 * args.prompts):
            req = request_for(models, prompts_file, size, args.k, args.max_new_tokens)
            seconds, _ = await services_time(req, settings, tmp / f"size-{size}")
            samples = size * args.k
            print(f"{f'{size} x {args.k}':<14}{samples:>9}{seconds:>10.2f}{seconds / samples:>12.4f}")

        # Scoring overlapped with sampling (each chunk of 8 prompts scored as it arrives) vs after it.
        size = 4 * args.prompts
        req = request_for(models, prompts_file, size, args.k, args.max_new_tokens)
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for repeat in range(args.repeats):
            for overlap in (False, True) if repeat % 2 == 0 else (True, False):
                _, stages = await services_time(
                    req, settings, tmp / f"ov-{overlap}-{repeat}", overlap, chunk=8
                )
                runs[overlap].append(stages)
        best = {o: min(r, key=lambda st: st["sample_s"] + st["score_s"]) for o, r in runs.items()}
        hidden = 1 - best[True]["score_s"] / best[False]["score_s"]
        both = {o: best[o]["sample_s"] + best[o]["score_s"] for o in best}
        print(f"\nScoring overlapped with sampling, {size} prompts x K={args.k}, chunks of 8 prompts")
        print(f"{'':<14}{'sample_s':>10}{'score_s':>10}{'both':>10}")
        for overlap in (False, True):
            row = best[overlap]
            label = "overlapped" if overlap else "after"
            print(f"{label:<14}{row['sample_s']:>10.2f}{row['score_s']:>10.2f}{both[overlap]:>10.2f}")
        print(
            f"score time hidden behind sampling: {hidden:.0%} (target >= 80%); sample + score "
            f"{both[True] / both[False]:.2f}x of sequential"
        )
    finally:
        for proc in reversed(processes):
            proc.stop()
        if redis_server is not None:
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
