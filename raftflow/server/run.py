"""Serving an app: the uvicorn options every service uses, and the entry point that runs it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette

from raftflow.server.protocol import head_timeout_protocol
from raftflow.settings import AuthNotConfigured, CommonSettings


def uvicorn_options(settings: CommonSettings) -> dict[str, Any]:
    """The connection limits every service passes to ``uvicorn.run``.

    h11 rather than httptools (uvicorn's default when installed): httptools buffers a request head
    of any size (a 100 MB header line is read into memory), h11 stops at ``max_header_bytes`` with a
    400. The services' time goes to models, not to HTTP parsing, so h11's slower parser costs nothing
    measurable here.
    """
    return {
        "http": head_timeout_protocol(settings.header_read_timeout),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "limit_concurrency": settings.max_connections,
    }


def serve(create_app: Callable[[Any], Starlette], settings: CommonSettings, **uvicorn_extra: Any) -> None:
    """Configure logging, build the app and run uvicorn with :func:`uvicorn_options`: every service's
    ``__main__``. A refusal to start (no token configured) exits with the reason and no traceback:
    it is a configuration error, not a crash. ``settings`` is the service's own settings class (it
    adds ``port``)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app(settings)
    except AuthNotConfigured as exc:
        sys.exit(f"error: {exc}")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,  # type: ignore[attr-defined]
        log_level=settings.log_level.lower(),
        **uvicorn_options(settings),
        **uvicorn_extra,
    )
