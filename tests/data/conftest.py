"""Helpers for the data-format tests: write small files in each container by hand, so the tests
read what a user would write, not what our own writers produce."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

# The sample the repo ships (a copy of ../shared/data/hh-rlhf/, MIT licence beside it).
HH_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "hh-rlhf" / "harmless-base-test-part.jsonl.gz"


def write_jsonl(path: Path, rows: Iterable[Any], compress: bool = False) -> Path:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def jsonl(tmp_path: Path) -> Callable[..., Path]:
    """``jsonl(rows, name="data.jsonl", compress=False) -> path``"""

    def make(rows: Iterable[Any], name: str = "data.jsonl", compress: bool = False) -> Path:
        return write_jsonl(tmp_path / name, rows, compress)

    return make


@pytest.fixture
def lmflow(tmp_path: Path) -> Callable[..., Path]:
    """``lmflow(type, instances, name="data.json") -> path``"""

    def make(kind: str, instances: list[Any], name: str = "data.json") -> Path:
        return write_json(tmp_path / name, {"type": kind, "instances": instances})

    return make
