"""``raftflow models init``: build the offline tokenizer and tiny models."""

from __future__ import annotations

import argparse
from dataclasses import fields

from raftflow.tiny_models import TinyModelConfig, build_models


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


def _init(args: argparse.Namespace) -> int:
    config = TinyModelConfig(**{f.name: getattr(args, f.name) for f in fields(TinyModelConfig)})
    paths = build_models(args.out, config)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
