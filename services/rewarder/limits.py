"""Run-time request limits (configured maxima), reported as 422s that name the field and the limit.

Static constraints (non-empty lists, strings only) are in the pydantic schemas; these depend on the
service's settings, so they are checked here with :func:`raftflow.server.limit_error`, which renders
them in the same shape as a schema violation.
"""

from __future__ import annotations

from collections.abc import Iterable

from raftflow.server import limit_error
from services.rewarder.settings import RewarderSettings


def check_count(field: str, count: int, settings: RewarderSettings) -> None:
    if count > settings.max_items:
        raise limit_error(
            field,
            f"{field} has {count} items; the limit is max_items={settings.max_items} (REWARDER_MAX_ITEMS)",
            count,
            limit=settings.max_items,
            setting="REWARDER_MAX_ITEMS",
        )


def check_chars(fields: Iterable[tuple[str, str]], settings: RewarderSettings) -> None:
    """``fields``: (location such as ``texts.3``, text) for every string the request carries."""
    limit = settings.max_text_chars
    for field, text in fields:
        if len(text) > limit:
            raise limit_error(
                field,
                f"{field} has {len(text)} characters; the limit is max_text_chars={limit} "
                "(REWARDER_MAX_TEXT_CHARS)",
                f"{text[:40]}...",
                limit=limit,
                setting="REWARDER_MAX_TEXT_CHARS",
            )
