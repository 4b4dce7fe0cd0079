"""Command lines of the services: flags become settings, and only the flags given override the
environment (every flag defaults to None, meaning "not given"). A value the settings refuse ends the
command with argparse's usage error and pydantic's reason (exit status 2), not a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


def settings_from_flags(
    parser: argparse.ArgumentParser, settings_class: type[S], argv: Sequence[str] | None = None
) -> S:
    given = {key: value for key, value in vars(parser.parse_args(argv)).items() if value is not None}
    try:
        return settings_class(**given)
    except ValidationError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits
