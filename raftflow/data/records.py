"""The records the loaders return. Plain frozen dataclasses: datasets of 100k records load fast, and
they are values (hashable, comparable) that tests and callers can build by hand."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PromptResponse:
    """One training example: a prompt (a conversation, see raftflow.conversation) and the response to
    it. How the two become model text is the job's prompt format, the same function the generator
    conditions with, so a RAFT sample trains on the very text the generator produced. An empty prompt
    means a plain text, trained on whole."""

    prompt: str
    response: str


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """Two answers of which ``chosen`` is preferred. With a ``prompt``, they are responses to it and
    the reward-model job renders each pair in its prompt format (as the rewarder will score them);
    without one, they are whole texts used as written."""

    chosen: str
    rejected: str
    prompt: str | None = None
