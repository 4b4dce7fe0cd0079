"""The calibration set behind ``normalize``: scored once at start-up, its mean/std kept.

Raw reward-model scores have an arbitrary offset and scale that change with every checkpoint; a fixed
reference set turns them into "standard deviations above the reference", comparable across runs. The
file is JSON Lines (or one JSON list): each entry a string (an already formatted text), ``{"text": ...}``
or ``{"prompt": ..., "response": ...}``. Pairs are formatted exactly like ``inputs``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from raftflow.schemas.reward import CalibrationStats, PromptResponse
from services.rewarder.scoring import Scorer


def read_entries(path: Path) -> list[str | PromptResponse]:
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        values = json.loads(raw)
        if not isinstance(values, list):
            raise ValueError(f"{path}: a .json calibration file must hold a list")
    else:
        values = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return [_entry(path, number, value) for number, value in enumerate(values, start=1)]


def _entry(path: Path, number: int, value: object) -> str | PromptResponse:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    if isinstance(value, dict) and "prompt" in value and "response" in value:
        return PromptResponse(prompt=value["prompt"], response=value["response"])
    raise ValueError(f"{path}: entry {number} is not a string, {{text}} or {{prompt, response}}: {value!r}")


async def calibrate(scorer: Scorer, path: Path) -> CalibrationStats:
    """Score the file through the normal path (same formatting, truncation and batching as requests)."""
    entries = read_entries(path)
    if len(entries) < 2:
        raise ValueError(f"{path}: a calibration set needs at least 2 entries, got {len(entries)}")
    texts = [entry for entry in entries if isinstance(entry, str)]
    pairs = [entry for entry in entries if isinstance(entry, PromptResponse)]
    prepared = (scorer.prepare_texts(texts) if texts else []) + (scorer.prepare_pairs(pairs) if pairs else [])
    scores = await scorer.score(prepared)
    std = statistics.pstdev(scores)
    if std <= 1e-12:
        raise ValueError(f"{path}: all {len(scores)} calibration scores are equal; cannot normalise by std 0")
    return CalibrationStats(file=str(path), items=len(scores), mean=statistics.fmean(scores), std=std)
