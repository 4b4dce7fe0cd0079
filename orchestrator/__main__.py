"""``python -m orchestrator --port 8000``: flags override the environment (see docs/orchestrator.md)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from orchestrator.main import create_app
from orchestrator.settings import OrchestratorSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--generator-url")
    parser.add_argument("--rewarder-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--database-url")
    parser.add_argument("--artifacts-dir")
    args = parser.parse_args()
    settings = OrchestratorSettings(**{k: v for k, v in vars(args).items() if v is not None})
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
