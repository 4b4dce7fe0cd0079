"""From a request's items to prepared items: check the configured limits, then format and encode.

Both scoring endpoints come through here, so a limit or a rejected item reads the same on either. Small
requests are encoded on the event loop (a thread hop costs more than tokenizing a few texts); large ones
in a worker thread, so one big request never stalls the others' intake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from jinja2 import TemplateError

from raftflow.schemas.reward import PromptResponse
from raftflow.server import limit_error
from services.rewarder.limits import check_chars, check_count
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings
from services.rewarder.sources import ItemRejected, Prepared

INLINE_CHARS = 32_768


async def pairs(
    field: str, items: Sequence[PromptResponse], scorer: Scorer, settings: RewarderSettings
) -> list[Prepared]:
    check_count(field, len(items), settings)
    check_chars(
        (
            (f"{field}.{i}.{part}", text)
            for i, pair in enumerate(items)
            for part, text in (("prompt", pair.prompt), ("response", pair.response))
        ),
        settings,
    )
    chars = sum(len(pair.prompt) + len(pair.response) for pair in items)
    return await _prepare(field, chars, lambda: scorer.prepare_pairs(items))


async def texts(
    field: str,
    items: Sequence[str],
    scorer: Scorer,
    settings: RewarderSettings,
    prompts: Sequence[str] | None = None,
) -> list[Prepared]:
    check_count(field, len(items), settings)
    check_chars(((f"{field}.{i}", text) for i, text in enumerate(items)), settings)
    if prompts is not None:
        check_chars(((f"prompts.{i}", text) for i, text in enumerate(prompts)), settings)
    return await _prepare(field, sum(map(len, items)), lambda: scorer.prepare_texts(items, prompts))


async def _prepare(field: str, chars: int, prepare: Callable[[], list[Prepared]]) -> list[Prepared]:
    try:
        return prepare() if chars <= INLINE_CHARS else await asyncio.to_thread(prepare)
    except ItemRejected as exc:
        raise limit_error(f"{field}.{exc.index}", f"{field}.{exc.index} {exc}") from exc
    except TemplateError as exc:
        raise limit_error(field, f"the reward tokenizer's chat template refused an item: {exc}") from exc
