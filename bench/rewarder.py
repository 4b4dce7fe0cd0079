"""Rewarder throughput: texts/s over HTTP with dynamic batching vs in-process batched forwards vs the
same service without batching.

One run, one tiny reward model (built offline in a temp dir), the same texts for every path:

- http-batched:    the rewarder as a subprocess (max batch size B, max wait W ms); C concurrent clients,
                   each sending one text per ``POST /score`` until all texts are scored.
- http-unbatched:  the same service with ``--max-batch-size 1 --max-wait-ms 0`` and the same C clients:
                   per-request scoring, one forward per text (target: http-batched >= 5x this).
- direct-batched:  in this process, ``model(**tokenizer(batch, padding=True))`` over batches of B texts
                   in the given order, what a script does (target: http-batched >= 0.8x this).
- direct-sorted:   the same, texts sorted by length first (the best case: every batch pads least).
- direct-single:   in this process, one text per forward.

Texts are RAFT-sized samples: HH-formatted pairs of a few-word prompt and a fortune as the response.
Each figure is the best of ``--repeats`` timed runs after a warm-up; every path uses the same torch
thread count and runs alone. Run: ``.venv/bin/python bench/rewarder.py [--texts 512 --clients 32]``;
``--reward-backbone models/pretrained/minilm-l6-v2`` measures a real reward-model backbone instead of
the tiny GPT-2 (whose forward is so cheap that the fixed cost of each HTTP request dominates).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from raftflow.conversation import render_pair
from raftflow.processes import ServiceProcess, python_module
from raftflow.server import free_port
from raftflow_cli.tiny_models import build_models, read_fortunes

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_VS_DIRECT = 0.9  # issue 16 (was 0.8)
TARGET_VS_UNBATCHED = 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=512, help="texts scored per timed run")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--batch-size", type=int, default=32, help="B: max batch size (service and direct)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="W: the service's max batch wait")
    parser.add_argument(
        "--max-batch-tokens", type=int, default=16_384, help="T: the service's padded-token cap"
    )
    parser.add_argument("--max-words", type=int, default=24, help="most words of a response")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (best one counts)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per side")
    parser.add_argument(
        "--models", type=Path, help="use models built before (DIR/reward) instead of building"
    )
    parser.add_argument(
        "--reward-backbone",
        type=Path,
        help="score with this checkpoint given a fresh one-output head, e.g. the all-MiniLM-L6-v2 dir of "
        "`raftflow models pretrained` (scores are meaningless, the cost per text is the real model's)",
    )
    return parser.parse_args()


def make_texts(count: int, max_words: int) -> list[str]:
    """HH pairs: the first 3 words of one fortune as the prompt, another fortune (cut to ``max_words``
    words) as the response. Varied lengths, like scored RAFT samples."""
    fortunes = read_fortunes()
    step = max(1, len(fortunes) // (2 * count))
    texts = []
    for i in range(count):
        prompt = " ".join(fortunes[2 * i * step].split()[:3])
        response = " ".join(fortunes[(2 * i + 1) * step].split()[: 4 + i % (max_words - 3)])
        texts.append(render_pair(prompt, response, "hh").text)
    return texts


def best_time(run: Callable[[], list[float]], repeats: int) -> tuple[float, list[float]]:
    """Best wall time over ``repeats`` runs after one warm-up run, and the scores of the last run."""
    scores = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        scores = run()
        times.append(time.perf_counter() - started)
    return min(times), scores


def bench_http(
    reward: Path, texts: list[str], args: argparse.Namespace, log_dir: Path, batch_size: int, wait_ms: float
) -> tuple[float, list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = ServiceProcess(
        name="rewarder",
        args=python_module(
            "services.rewarder",
            *("--model", str(reward), "--port", str(port), "--device", "cpu"),
            *("--torch-threads", str(args.threads), "--max-batch-size", str(batch_size)),
            *("--max-wait-ms", str(wait_ms), "--max-batch-tokens", str(args.max_batch_tokens)),
            *("--log-level", "warning"),
        ),
        log_path=log_dir / f"rewarder-{batch_size}.log",
        env={"RAFTFLOW_API_TOKEN": "", "RAFTFLOW_ALLOW_NO_AUTH": "1"},  # loopback only
        cwd=REPO_ROOT,
        health_url=url + "/health",
    ).start()
    try:
        service.wait_healthy(timeout=180)
        return best_time(lambda: asyncio.run(score_concurrently(url, texts, args.clients)), args.repeats)
    finally:
        service.stop()


async def score_concurrently(url: str, texts: list[str], clients: int) -> list[float]:
    """``clients`` workers, each posting one text at a time, taking the next unscored text.

    The load comes from aiohttp (installed with the ``text-generation`` client), not httpx: at 32
    concurrent connections httpx's async pool cost ~4 ms of CPU per request on our 2-core box, 20x
    aiohttp's, and the load generator shares the CPU with the service it measures.
    """
    scores: list[float] = [0.0] * len(texts)
    next_index = iter(range(len(texts)))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(120)) as session:

        async def worker() -> None:
            for index in next_index:
                async with session.post("/score", json={"texts": [texts[index]]}) as response:
                    response.raise_for_status()
                    scores[index] = (await response.json())["scores"][0]

        await asyncio.gather(*(worker() for _ in range(clients)))
    return scores


def bench_direct(
    reward: Path, texts: list[str], args: argparse.Namespace
) -> dict[str, tuple[float, list[float]]]:
    import torch

    from raftflow.modeling import load_reward_model, load_tokenizer

    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(str(reward))
    model = load_reward_model(str(reward))

    def forward(batch: list[str]) -> list[float]:
        with torch.inference_mode():
            return model(**tokenizer(batch, return_tensors="pt", padding=True)).logits[:, 0].tolist()

    def batched(order: list[int]) -> Callable[[], list[float]]:
        def run() -> list[float]:
            scores = [0.0] * len(texts)
            for start in range(0, len(order), args.batch_size):
                chunk = order[start : start + args.batch_size]
                for index, score in zip(chunk, forward([texts[i] for i in chunk]), strict=True):
                    scores[index] = score
            return scores

        return run

    by_length = sorted(range(len(texts)), key=lambda i: len(tokenizer(texts[i])["input_ids"]))
    return {
        "direct-batched": best_time(batched(list(range(len(texts)))), args.repeats),
        "direct-sorted": best_time(batched(by_length), args.repeats),
        "direct-single": best_time(lambda: [forward([text])[0] for text in texts], args.repeats),
    }


def with_scalar_head(backbone: Path, out: Path) -> Path:
    """``backbone`` as a one-output sequence classifier (a new, seeded head), saved to ``out``."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from raftflow.modeling import load_tokenizer

    torch.manual_seed(0)
    tokenizer = load_tokenizer(str(backbone))
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=1, ignore_mismatched_sizes=True
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> int:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    texts = make_texts(args.texts, args.max_words)
    with tempfile.TemporaryDirectory(prefix="raftflow-bench-") as tmp:
        if args.reward_backbone:
            reward = with_scalar_head(args.reward_backbone, Path(tmp) / "reward")
        elif args.models:
            reward = args.models / "reward"
        else:
            reward = build_models(Path(tmp) / "models")["reward"]
        from raftflow.modeling import load_tokenizer

        lengths = [len(ids) for ids in load_tokenizer(str(reward))(texts)["input_ids"]]
        print(
            f"{len(texts)} texts ({sum(lengths) / len(lengths):.0f} tokens on average, {min(lengths)}-"
            f"{max(lengths)}), {args.clients} clients, B={args.batch_size}, W={args.max_wait_ms} ms, "
            f"{args.threads} torch thread(s) per side, cpu={os.cpu_count()}, best of {args.repeats}",
            flush=True,
        )
        results = {
            "http-batched": bench_http(reward, texts, args, Path(tmp), args.batch_size, args.max_wait_ms),
            "http-unbatched": bench_http(reward, texts, args, Path(tmp), 1, 0.0),
        }
        results.update(bench_direct(reward, texts, args))

    reference = results["direct-single"][1]
    rate = {name: len(texts) / seconds for name, (seconds, _) in results.items()}
    print(f"\n{'path':<15} {'seconds':>8} {'texts/s':>9} {'max |score - single|':>21}")
    for name, (seconds, scores) in results.items():
        drift = max(abs(a - b) for a, b in zip(scores, reference, strict=True))
        print(f"{name:<15} {seconds:>8.3f} {rate[name]:>9.1f} {drift:>21.2e}")
    vs_direct = rate["http-batched"] / rate["direct-batched"]
    vs_sorted = rate["http-batched"] / rate["direct-sorted"]
    vs_unbatched = rate["http-batched"] / rate["http-unbatched"]
    print()
    print(f"http-batched / direct-batched = {vs_direct:.2f}  (target >= {TARGET_VS_DIRECT})")
    print(f"http-batched / direct-sorted  = {vs_sorted:.2f}")
    print(f"http-batched / http-unbatched = {vs_unbatched:.2f}  (target >= {TARGET_VS_UNBATCHED})")
    return 0 if vs_direct >= TARGET_VS_DIRECT and vs_unbatched >= TARGET_VS_UNBATCHED else 1


if __name__ == "__main__":
    sys.exit(main())
