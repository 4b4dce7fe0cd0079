"""``python -m services.rewarder``: parse settings, build the app, run uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from services.rewarder.app import create_app
from services.rewarder.cli import parse_settings


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
    )


if __name__ == "__main__":
    main()
