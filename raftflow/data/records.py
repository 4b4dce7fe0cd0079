"""The records the loaders return. Plain frozen dataclasses: datasets of 100k records load fast, and
they are values (hashable, comparable) that tests and callers can build by hand."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PromptResponse:
    """One training example. The model sees ``prompt + response`` exactly as written (no separator is
    added), so a RAFT sample trains on the very text the generator produced after the prompt."""

    prompt: str
    response: str


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """Two full texts (prompt and response together) of which ``chosen`` is preferred."""

    chosen: str
    rejected: str
