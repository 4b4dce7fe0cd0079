"""An SFT job on 2 processes (DDP over gloo, 1 torch thread each) vs 1 process (1 thread), side by side.

Issue 16's target: >= 1.6x training tokens/s. Both sides run the same job through
``services.trainer.jobs.run_job`` as the worker does: ``TRAINER_PROCESSES=1`` trains in this process,
``TRAINER_PROCESSES=2`` launches ``accelerate launch`` (torchrun, gloo on CPU) through
``services.trainer.launcher``. tokens/s is the Trainer's own count of non-padding tokens over its
training loop (both ranks' tokens, gathered); the wall time adds the launch (imports in each rank), which
a long job amortises. Each process keeps the same per-device batch, so 2 processes take half the steps
per epoch (the global batch doubles, as in any DDP setup). Sides alternate, best of ``--repeats``.

    .venv/bin/python bench/multiprocess_training.py [--examples 512 --epochs 2 --repeats 2]
    .venv/bin/python bench/multiprocess_training.py --model PATH  # e.g. SmolLM2 with --lora-r 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raftflow.data import PromptResponse, write_text2text  # noqa: E402
from raftflow.schemas.jobs import SFTJob, TrainingConfig  # noqa: E402
from raftflow_cli.tiny_models import TinyModelConfig, build_models, read_fortunes  # noqa: E402
from services.trainer.jobs import run_job  # noqa: E402
from services.trainer.settings import TrainerSettings  # noqa: E402


def examples(count: int) -> list[PromptResponse]:
    fortunes = [" ".join(f.split()) for f in read_fortunes() if len(f.split()) >= 12]
    rows = []
    for i in range(count):
        words = fortunes[i % len(fortunes)].split()
        rows.append(PromptResponse(" ".join(words[:6]), " " + " ".join(words[6:40])))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a causal LM dir (default: a small GPT-2 built here)")
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch", type=int, default=8, help="per-device batch size")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lora-r", type=int, default=0, help="train LoRA adapters of this rank (0: full)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-multiprocess-"))
    # Wider than the test models (256 wide, 4 layers): per-step compute that dwarfs the gradient
    # all-reduce, as in real jobs.
    model = args.model or str(build_models(work / "models", TinyModelConfig(n_layer=4, n_embd=256))["policy"])
    data = work / "sft.json"
    write_text2text(data, examples(args.examples))
    training = TrainingConfig(
        epochs=args.epochs,
        learning_rate=5e-4,
        per_device_batch_size=args.batch,
        max_length=args.max_length,
        lora={"r": args.lora_r} if args.lora_r else None,
        logging_steps=5,
    )
    results: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    for turn in range(args.repeats):
        for processes in (1, 2) if turn % 2 == 0 else (2, 1):
            job = SFTJob(
                job_id=f"p{processes}-{turn}",
                model=model,
                data=str(data),
                output_dir=str(work / "out"),
                training=training,
            )
            settings = TrainerSettings(processes=processes, torch_threads=1)
            started = time.perf_counter()
            result = run_job(job, settings=settings)
            wall = time.perf_counter() - started
            m = result.metrics
            results[processes].append((m["tokens_per_second"], wall, m["train_loss_last"]))
            print(
                f"  {processes} process(es): {m['tokens_per_second']:7.0f} tokens/s, "
                f"{m['train_steps']:.0f} steps, "
                f"loss {m['train_loss_first']:.2f} -> {m['train_loss_last']:.2f}, wall {wall:.1f} s",
                flush=True,
            )
    one = max(results[1])
    two = max(results[2])
    ratio = two[0] / one[0]
    wall_ratio = min(w for _, w, _ in results[1]) / min(w for _, w, _ in results[2])
    print(
        f"\nSFT, {args.examples} examples x {args.epochs:g} epochs, per-device batch {args.batch}, "
        "1 torch thread per process,"
    )
    print(f"model {model}, best of {args.repeats}:")
    print(
        f"1 process {one[0]:.0f} tokens/s, 2 processes (DDP, gloo) {two[0]:.0f} tokens/s: "
        f"{ratio:.2f}x (target >= 1.6)"
    )
    print(f"wall time with the launch: {wall_ratio:.2f}x")
    return 0 if ratio >= 1.6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
