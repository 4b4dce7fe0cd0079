"""Calibration files and the statistics ``normalize`` uses, computed in-process through the same
scorer the service runs (a VADER function source: no model needed)."""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path

import pytest

from raftflow.rewards.sentiment import vader_compound
from raftflow.schemas.reward import CalibrationStats, PromptResponse
from services.rewarder.calibration import calibrate, read_entries
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings
from services.rewarder.sources import RewardSourceError, build_source


def test_jsonl_holds_texts_and_pairs(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_text('"plain text"\n\n{"text": "a text"}\n{"prompt": "p", "response": "r"}\n')
    assert read_entries(path) == ["plain text", "a text", PromptResponse(prompt="p", response="r")]


def test_json_list_and_bad_entries(tmp_path: Path):
    good = tmp_path / "c.json"
    good.write_text(json.dumps(["one", {"prompt": "p", "response": "r"}]))
    assert len(read_entries(good)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"fine"\n{"question": "?"}\n')
    with pytest.raises(ValueError, match="entry 2"):
        read_entries(bad)


async def calibrated(function: str, path: Path) -> CalibrationStats:
    settings = RewarderSettings(function=function, max_wait_ms=0)
    scorer = Scorer(build_source(settings), "hh", settings)
    await scorer.start()
    try:
        return await calibrate(scorer, path)
    finally:
        await scorer.stop()


def test_stats_are_the_mean_and_population_std(tmp_path: Path):
    texts = ["Great!", "Terrible.", "A chair.", "Lovely, lovely day."]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in texts))
    stats = asyncio.run(calibrated("raftflow.rewards.sentiment:vader_positivity", path))
    reference = [vader_compound(t) for t in texts]
    assert stats.items == 4
    assert stats.mean == pytest.approx(statistics.fmean(reference))
    assert stats.std == pytest.approx(statistics.pstdev(reference))


def test_a_set_without_spread_is_refused(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_text('"a box"\n"a chair"\n')
    with pytest.raises(ValueError, match="std 0"):
        asyncio.run(calibrated("raftflow.rewards.sentiment:vader_positivity", path))


def test_a_function_returning_nan_is_a_source_error(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_text('"a"\n"b"\n')
    with pytest.raises(RewardSourceError, match="non-finite"):
        asyncio.run(calibrated("tests.rewarder.reward_fns:not_a_number", path))
