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
from raftflow.data.sources import read_hub_dataset

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
    hh.add_argument(
        "source",
        help="HH-RLHF file (e.g. harmless-base/train.jsonl.gz; the repo ships a sample in data/hh-rlhf/), "
        "or a hub dataset name such as Anthropic/hh-rlhf when online",
    )
    hh.add_argument("out_dir", help="directory to write the three sets into")
    hh.add_argument("--split", default="train", help="hub datasets only: the split (default train)")
    hh.add_argument("--data-dir", help="hub datasets only: the subset folder, e.g. harmless-base")
    hh.add_argument("--limit", type=int, help="convert only the first N records")
    hh.set_defaults(handler=_hh_rlhf)

    check = sub.add_parser(
        "check", help="load a data file as a given kind and report its size or first error"
    )
    check.add_argument("path")
    check.add_argument("--as", dest="kind", choices=sorted(LOADERS), required=True)
    check.set_defaults(handler=_check)


def _hh_rlhf(args: argparse.Namespace) -> int:
    try:
        source = args.source
        if not Path(source).exists() and _looks_like_hub_name(source):
            source = read_hub_dataset(source, args.split, args.data_dir)
        report = convert_hh_rlhf(source, args.out_dir, args.limit)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    print(f"written to {Path(args.out_dir).resolve()}")
    return 0


def _looks_like_hub_name(name: str) -> bool:
    """``owner/name`` with no path-like parts: a missing local file is reported as such otherwise."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and "." not in parts[0]


def _check(args: argparse.Namespace) -> int:
    try:
        records = LOADERS[args.kind](args.path)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.path}: {len(records)} {args.kind} records")
    return 0
