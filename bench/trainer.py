"""Trainer throughput: tokens/s of the ``sft`` job through the queue vs a plain in-process Trainer.

One tiny policy (built offline in a temp dir), the same fortune-based (prompt, response) data and the
same hyper-parameters for both sides:

- plain:  what a training script does, in a fresh Python process like the worker's job process:
          tokenize prompt + response + EOS, a ``DataCollatorForLanguageModeling`` and
          ``Trainer.train()``.
- queued: ``TrainerClient.submit`` of an ``SFTJob`` to a real worker subprocess
          (``python -m services.trainer``) over Redis (embedded unless ``--redis-url``), then ``wait``.

Two figures per side:

- train tokens/s: non-padding tokens / the training loop's own runtime (``train_runtime``). The
  target is queued >= 0.95x plain: the job's extras (progress callback, token counting) cost nothing
  measurable. Both sides run cold, in a new process each time (a warm, long-lived process trains
  faster for its first minutes, which would compare warm-up rather than the queue).
- end-to-end tokens/s: tokens / wall time from job start to saved checkpoint. Plain: from loading
  the model (its imports done); queued: from ``submit`` to the result, including the queue round trip
  and the job process (whose torch import the worker preloads while idle).

Each side runs ``--repeats`` times, taking turns; the ratios are the median of paired ratios, the
ratio of medians and the ratio of best runs. Run:
``.venv/bin/python bench/trainer.py [--examples 500 --repeats 5 --threads 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from raftflow.clients.trainer import TrainerClient
from raftflow.data import PromptResponse, load_pairs, write_text2text
from raftflow.processes import ServiceProcess, python_module
from raftflow.schemas.jobs import SFTJob, TrainingConfig
from raftflow_cli.embedded_redis import EmbeddedRedis
from raftflow_cli.tiny_models import build_models, read_fortunes

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.95


@dataclass
class Run:
    side: str
    tokens: float
    train_runtime: float
    wall: float

    @property
    def train_tps(self) -> float:
        return self.tokens / self.train_runtime

    @property
    def wall_tps(self) -> float:
        return self.tokens / self.wall


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=500, help="(prompt, response) pairs")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="runs per side, taking turns")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per side")
    parser.add_argument("--redis-url", help="use this Redis instead of an embedded one (its DB is flushed)")
    parser.add_argument("--plain-run", nargs=3, metavar=("POLICY", "DATA", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


def fortune_examples(count: int) -> list[PromptResponse]:
    """Prompt = a fortune's first four words, response = the rest: varied lengths, like RAFT samples."""
    examples = []
    for text in read_fortunes():
        words = text.split()
        if 8 <= len(words) <= 60:
            examples.append(PromptResponse(" ".join(words[:4]), " " + " ".join(words[4:])))
        if len(examples) == count:
            break
    return examples


def training_config(args: argparse.Namespace) -> TrainingConfig:
    return TrainingConfig(
        epochs=args.epochs,
        learning_rate=1e-3,
        per_device_batch_size=args.batch_size,
        max_length=args.max_length,
        logging_steps=10,
    )


def run_plain(policy: Path, examples: list[PromptResponse], config: TrainingConfig, out: Path) -> Run:
    """A plain transformers script on the same data, model and hyper-parameters."""
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from raftflow.modeling import load_causal_lm, load_tokenizer

    started = time.perf_counter()
    tokenizer = load_tokenizer(str(policy))
    model = load_causal_lm(str(policy), dtype=torch.float32)
    texts = [e.prompt + e.response + tokenizer.eos_token for e in examples]
    dataset = [
        {"input_ids": ids}
        for ids in tokenizer(texts, truncation=True, max_length=config.max_length)["input_ids"]
    ]
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(out),
            num_train_epochs=config.epochs,
            learning_rate=config.learning_rate,
            per_device_train_batch_size=config.per_device_batch_size,
            logging_steps=config.logging_steps,
            seed=config.seed,
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        ),
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    output = trainer.train()
    trainer.save_model(str(out))
    wall = time.perf_counter() - started
    # Non-padding tokens seen: every example once per epoch (the job counts the same way).
    tokens = sum(len(row["input_ids"]) for row in dataset) * config.epochs
    return Run("plain Trainer script", tokens, output.metrics["train_runtime"], wall)


def run_plain_in_subprocess(args: argparse.Namespace, policy: Path, data: Path, out: Path) -> Run:
    """``run_plain`` in a new interpreter (this script with ``--plain-run``), like a user's script."""
    command = [sys.executable, __file__, "--plain-run", str(policy), str(data), str(out)]
    command += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    command += ["--max-length", str(args.max_length), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return Run(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_queued(client: TrainerClient, job: SFTJob) -> Run:
    started = time.perf_counter()
    client.submit(job)
    result = client.wait(job.job_id, poll_interval=0.2)
    wall = time.perf_counter() - started
    return Run("sft job via queue", result.metrics["train_tokens"], result.metrics["train_runtime"], wall)


@contextlib.contextmanager
def redis_url(given: str | None) -> Iterator[str]:
    if given:
        import redis

        redis.Redis.from_url(given).flushdb()
        yield given
        return
    with EmbeddedRedis() as server:
        yield server.url


def print_table(runs: list[Run]) -> None:
    print(f"{'side':<28} {'tokens':>9} {'train s':>8} {'train tok/s':>12} {'wall s':>8} {'e2e tok/s':>10}")
    for run in runs:
        print(
            f"{run.side:<28} {run.tokens:>9.0f} {run.train_runtime:>8.2f} {run.train_tps:>12.0f} "
            f"{run.wall:>8.2f} {run.wall_tps:>10.0f}"
        )


def print_ratios(plain: list[Run], queued: list[Run]) -> None:
    """Ratios three ways. On a shared machine the paired median is the steadiest: each pair ran back
    to back, so load from other processes hits both sides of a pair alike."""
    pairs = list(zip(plain, queued, strict=True))
    rows = {
        "paired median": (
            statistics.median(q.train_tps / p.train_tps for p, q in pairs),
            statistics.median(q.wall_tps / p.wall_tps for p, q in pairs),
        ),
        "median": (
            statistics.median(r.train_tps for r in queued) / statistics.median(r.train_tps for r in plain),
            statistics.median(r.wall_tps for r in queued) / statistics.median(r.wall_tps for r in plain),
        ),
        "best": (
            max(r.train_tps for r in queued) / max(r.train_tps for r in plain),
            max(r.wall_tps for r in queued) / max(r.wall_tps for r in plain),
        ),
    }
    for name, (train, wall) in rows.items():
        verdict = "OK" if train >= TARGET else "BELOW TARGET"
        print(
            f"{name:>13}: train tokens/s queued/plain {train:.3f} (target >= {TARGET}: {verdict}); "
            f"end-to-end {wall:.3f}"
        )


def main() -> int:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["RAFTFLOW_TORCH_THREADS"] = str(args.threads)
    os.environ["RAFTFLOW_DEVICE"] = "cpu"
    config = training_config(args)
    if args.plain_run:
        import torch

        torch.set_num_threads(args.threads)
        policy, data, out = (Path(p) for p in args.plain_run)
        print(json.dumps(asdict(run_plain(policy, load_pairs(data), config, out))))
        return 0

    with (
        tempfile.TemporaryDirectory(prefix="raftflow-bench-trainer-") as tmp_name,
        redis_url(args.redis_url) as url,
    ):
        tmp = Path(tmp_name)
        policy = build_models(tmp / "models")["policy"]
        examples = fortune_examples(args.examples)
        data = tmp / "sft.json"
        write_text2text(data, examples)
        worker = ServiceProcess(
            name="trainer",
            args=python_module("services.trainer"),
            log_path=tmp / "worker.log",
            # A fresh child per job, like the plain side's fresh process per run: both sides cold.
            env={"REDIS_URL": url, "TRAINER_MAX_TASKS_PER_CHILD": "1"},
            cwd=REPO_ROOT,
        ).start()
        plain: list[Run] = []
        queued: list[Run] = []
        try:
            with TrainerClient(url, retry_seconds=30) as client:
                for repeat in range(args.repeats):
                    plain.append(run_plain_in_subprocess(args, policy, data, tmp / f"plain-{repeat}"))
                    job = SFTJob(
                        job_id=f"bench-{repeat}",
                        model=str(policy),
                        data=str(data),
                        output_dir=str(tmp / "queued"),
                        training=config,
                    )
                    queued.append(run_queued(client, job))
        finally:
            worker.stop()
    print(
        f"{len(examples)} examples, {args.epochs:g} epoch(s), batch {args.batch_size}, "
        f"max_length {args.max_length}, {args.threads} torch thread(s), CPU"
    )
    print_table([run for pair in zip(plain, queued, strict=True) for run in pair])
    print_ratios(plain, queued)
    return 0


if __name__ == "__main__":
    sys.exit(main())
