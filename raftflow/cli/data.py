"""``raftflow data``: convert and check datasets (formats in docs/data.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from raftflow.data import (
    DataError,
    convert_hh_rlhf,
    load_pairs,
    load_preferences,
    load_prompts,
    load_sft_examples,
    load_texts,
)
from raftflow.data.hh_rlhf import PROMPTS_FILE, REWARD_PAIRS_FILE, SFT_FILE

LOADERS: dict[str, Callable[[str], list]] = {
    "prompts": load_prompts,
    "pairs": load_pairs,
    "texts": load_texts,
    "sft": load_sft_examples,
    "preferences": load_preferences,
}


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="convert and check datasets")
    sub = data.add_subparsers(dest="data_command", required=True)

    hh = sub.add_parser(
        "hh-rlhf",
        help="split an HH-RLHF file into SFT pairs, reward-model pairs and RAFT prompts",
        description=f"Reads HH-RLHF JSON Lines (optionally .gz) and writes {SFT_FILE}, {REWARD_PAIRS_FILE} "
        f"and {PROMPTS_FILE} into OUT_DIR. Malformed records are dropped and counted.",
    )
    hh.add_argument("source", help="HH-RLHF file, e.g. harmless-base/train.jsonl.gz")
    hh.add_argument("out_dir", help="directory to write the three sets into")
    hh.set_defaults(handler=_hh_rlhf)

    check = sub.add_parser(
        "check", help="load a data file as a given kind and report its size or first error"
    )
    check.add_argument("path")
    check.add_argument("--as", dest="kind", choices=sorted(LOADERS), required=True)
    check.set_defaults(handler=_check)


def _hh_rlhf(args: argparse.Namespace) -> int:
    try:
        report = convert_hh_rlhf(args.source, args.out_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    print(f"written to {Path(args.out_dir).resolve()}")
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        records = LOADERS[args.kind](args.path)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.path}: {len(records)} {args.kind} records")
    return 0
