"""The ``raftflow`` command. Each command group lives in its own module and registers itself here;
this file only wires them together."""

from __future__ import annotations

import argparse
import sys

from raftflow_cli.commands import data, demo, models, stages, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (models, data, stages, train, demo):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
