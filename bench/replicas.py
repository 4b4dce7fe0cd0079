"""Sample stage over 2 generator replicas vs 1 (issue 16's replica target: >= 1.8x), side by side.

Both sides run ``raftflow.stages.sample_prompts`` as the orchestrator's sample stage does (chunks of
``--chunk`` prompts, one request each, seeds per chunk), against real generator processes on the tiny
policy, each with 1 torch thread: one replica (one call in flight), then the same work spread over two
replicas by ``orchestrator.replicas.GeneratorPool`` (one call in flight per replica). The samples are
checked equal (the seeds belong to the chunks, not to the replica). Sides alternate, best of
``--repeats``.

    .venv/bin/python bench/replicas.py [--prompts 128 --k 8 --max-tokens 32 --chunk 16 --repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAFTFLOW_ALLOW_NO_AUTH", "1")

from orchestrator.backends import GeneratorPolicyServer  # noqa: E402
from orchestrator.replicas import GeneratorPool  # noqa: E402
from raftflow.clients.generator import CompletionsClient  # noqa: E402
from raftflow.processes import ServiceProcess, python_module  # noqa: E402
from raftflow.schemas.generation import SamplingParams  # noqa: E402
from raftflow.server import free_port  # noqa: E402
from raftflow.stages import sample_prompts  # noqa: E402
from raftflow_cli.tiny_models import build_models, read_fortunes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def start_generator(model: Path, log_dir: Path) -> tuple[ServiceProcess, str]:
    port = free_port()
    process = ServiceProcess(
        f"generator-{port}",
        python_module("services.generator", "--port", str(port), "--model", str(model)),
        log_dir / f"generator-{port}.log",
        env={"RAFTFLOW_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        health_url=f"http://127.0.0.1:{port}/health",
    ).start()
    process.wait_healthy(timeout=120)
    return process, f"http://127.0.0.1:{port}"


async def stage(urls: list[str], prompts: list[str], k: int, params: SamplingParams, chunk: int):
    """(seconds, samples) of one sample stage over ``urls``."""
    clients = [CompletionsClient(url, prompts_per_request=chunk, timeout=600) for url in urls]
    try:
        if len(clients) == 1:
            sampler = clients[0]
        else:
            sampler = GeneratorPool([GeneratorPolicyServer(c) for c in clients])

        async def sample_chunk(batch: list[str], chunk_params: SamplingParams):
            return await sampler.sample(batch, k, chunk_params)

        started = time.perf_counter()
        rows = await sample_prompts(
            prompts, k, params, sample_chunk, chunk_prompts=chunk, concurrency=len(urls)
        )
        return time.perf_counter() - started, rows
    finally:
        for client in clients:
            await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    models = build_models(work / "models")
    prompts = [" ".join(f.split()[:6]) for f in read_fortunes()[: args.prompts]]
    params = SamplingParams(max_tokens=args.max_tokens, temperature=1.0, seed=0)
    processes: list[ServiceProcess] = []
    try:
        for _ in range(2):
            processes.append(start_generator(models["policy"], work))
        urls = [url for _, url in processes]
        one_times, two_times = [], []
        for turn in range(args.repeats):
            order = [[urls[0]], urls] if turn % 2 == 0 else [urls, [urls[0]]]
            for side in order:
                seconds, rows = asyncio.run(stage(side, prompts, args.k, params, args.chunk))
                (one_times if len(side) == 1 else two_times).append(seconds)
                if len(side) == 1:
                    reference = rows
                else:
                    spread = rows
            assert [r.model_dump() for r in reference] == [r.model_dump() for r in spread], "samples differ"
            print(f"  1 replica {one_times[-1]:6.2f} s   2 replicas {two_times[-1]:6.2f} s", flush=True)
    finally:
        for process, _ in processes:
            process.stop()
    ratio = min(one_times) / min(two_times)
    samples = args.prompts * args.k
    one_rate, two_rate = samples / min(one_times), samples / min(two_times)
    print(f"\nsample stage, {args.prompts} prompts x {args.k} samples x <= {args.max_tokens} tokens,")
    print(f"tiny GPT-2, 1 torch thread per replica, best of {args.repeats}, samples identical:")
    print(
        f"1 replica {one_rate:.0f} samples/s, 2 replicas {two_rate:.0f} samples/s: {ratio:.2f}x "
        "(target >= 1.8)"
    )
    return 0 if ratio >= 1.8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
