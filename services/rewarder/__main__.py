"""``python -m services.rewarder``: parse settings, build the app, run uvicorn."""

from __future__ import annotations

from raftflow.server import serve
from services.rewarder.app import create_app
from services.rewarder.cli import parse_settings


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    serve(create_app, settings, access_log=settings.access_log)


if __name__ == "__main__":
    main()
