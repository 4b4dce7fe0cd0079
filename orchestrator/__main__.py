"""``python -m orchestrator --port 8000``: flags override the environment (see docs/orchestrator.md)."""

from __future__ import annotations

import argparse

from orchestrator.main import create_app
from orchestrator.settings import OrchestratorSettings
from raftflow.server import serve
from raftflow.server.entry import settings_from_flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--generator-url")
    parser.add_argument("--rewarder-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--database-url")
    parser.add_argument("--artifacts-dir")
    parser.add_argument(
        "--path-root",
        dest="path_roots",
        action="append",
        help="a directory run paths may point into; repeatable [ORCHESTRATOR_PATH_ROOTS, any]",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    serve(create_app, settings_from_flags(build_parser(), OrchestratorSettings, argv))


if __name__ == "__main__":
    main()
