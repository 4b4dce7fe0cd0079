"""Write the formats the loaders read, atomically (temp file + ``os.replace``): a reader, such as a
trainer picking up a RAFT iteration's selected samples, never sees half a file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from raftflow.atomic import write_json_atomic, write_text_atomic
from raftflow.data.records import PreferencePair, PromptResponse


def write_text2text(path: str | Path, pairs: Sequence[tuple[str, str]] | Sequence[PromptResponse]) -> None:
    """LMFlow text2text: ``{"type": "text2text", "instances": [{"input": p, "output": r}, ...]}``."""
    instances = [{"input": prompt, "output": response} for prompt, response in _pairs(pairs)]
    write_json_atomic(path, {"type": "text2text", "instances": instances})


def write_text_only(path: str | Path, texts: Iterable[str]) -> None:
    """LMFlow text_only: ``{"type": "text_only", "instances": [{"text": t}, ...]}``."""
    write_json_atomic(path, {"type": "text_only", "instances": [{"text": text} for text in texts]})


def write_preferences_jsonl(
    path: str | Path, pairs: Sequence[tuple[str, str]] | Sequence[PreferencePair]
) -> None:
    """JSON Lines of ``{"chosen": ..., "rejected": ...}`` full texts (the HH-RLHF layout), with a
    ``prompt`` field for pairs that have one."""
    lines = (
        json.dumps(_preference_record(pair), ensure_ascii=False) + "\n"
        for pair in (p if isinstance(p, PreferencePair) else PreferencePair(*p) for p in pairs)
    )
    write_text_atomic(path, "".join(lines))


def _preference_record(pair: PreferencePair) -> dict[str, str]:
    record = {"prompt": pair.prompt} if pair.prompt is not None else {}
    return record | {"chosen": pair.chosen, "rejected": pair.rejected}


def _pairs(items: Iterable[tuple[str, str] | PromptResponse]) -> Iterable[tuple[str, str]]:
    for item in items:
        if isinstance(item, PromptResponse):
            yield item.prompt, item.response
        else:
            first, second = item
            yield first, second
