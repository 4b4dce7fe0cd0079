"""Writers produce the documented layouts, round-trip through the loaders, and never leave temp files."""

from __future__ import annotations

import json
from pathlib import Path

from raftflow.data import (
    PreferencePair,
    PromptResponse,
    load_pairs,
    load_preferences,
    load_texts,
    write_preferences_jsonl,
    write_text2text,
    write_text_only,
)


def test_text2text_layout_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "sft.json"
    write_text2text(path, [("Q: 1+1?\nA:", " 2"), ("Ünïcode ✓", "")])
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document == {
        "type": "text2text",
        "instances": [{"input": "Q: 1+1?\nA:", "output": " 2"}, {"input": "Ünïcode ✓", "output": ""}],
    }
    assert load_pairs(path) == [PromptResponse("Q: 1+1?\nA:", " 2"), PromptResponse("Ünïcode ✓", "")]
    # Records are accepted as well as tuples.
    write_text2text(path, load_pairs(path))
    assert json.loads(path.read_text(encoding="utf-8")) == document
    assert sorted(p.name for p in path.parent.iterdir()) == ["sft.json"]


def test_text_only_and_preferences_round_trip(tmp_path: Path) -> None:
    write_text_only(tmp_path / "texts.json", ["a", "b\nc"])
    assert json.loads((tmp_path / "texts.json").read_text())["type"] == "text_only"
    assert load_texts(tmp_path / "texts.json") == ["a", "b\nc"]

    pairs = [PreferencePair("good\nanswer", "bad"), PreferencePair("x", "y")]
    write_preferences_jsonl(tmp_path / "prefs.jsonl", pairs)
    lines = (tmp_path / "prefs.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"chosen": "good\nanswer", "rejected": "bad"},
        {"chosen": "x", "rejected": "y"},
    ]
    assert load_preferences(tmp_path / "prefs.jsonl") == pairs
    write_preferences_jsonl(tmp_path / "prefs.jsonl", [("c", "r")])
    assert load_preferences(tmp_path / "prefs.jsonl") == [PreferencePair("c", "r")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.jsonl", "texts.json"]
