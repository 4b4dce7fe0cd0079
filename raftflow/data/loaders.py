"""Load prompts, training pairs, plain texts and preference pairs from any supported container.

Each loader knows which fields it needs in each format (LMFlow text2text: ``input``/``output``; LMFlow
text_only and ``.txt``: ``text``; JSON Lines, JSON lists and datasets dirs: ``prompt``, ``response``,
``text``, ``chosen``, ``rejected``) and raises :class:`DataError` naming the file, the record and the
field at the first bad record, so bad data fails before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from raftflow.conversation import looks_like_dialogue, messages_to_text
from raftflow.data.dialogue import split_dialogue
from raftflow.data.errors import DataError
from raftflow.data.records import PreferencePair, PromptResponse
from raftflow.data.sources import Row, Source, read_source
from raftflow.json_values import lone_surrogate

T = TypeVar("T")


def load_prompts(path: str | Path) -> list[str]:
    """Prompts: LMFlow text2text ``input``, LMFlow text_only ``text``, ``.txt`` lines, or ``prompt``
    in JSON Lines / JSON lists / datasets dirs (extra fields such as ``response`` are ignored), or
    OpenAI-style ``messages`` records, turned into dialogue text (raftflow.conversation)."""
    source = read_source(path)
    if source.format == "records" and source.rows and "messages" in source.rows[0].fields:
        return _non_empty(source, [_messages(source, row) for row in source.rows])
    field = {"text2text": "input", "text_only": "text", "lines": "text", "records": "prompt"}[source.format]
    return _non_empty(source, [_string(source, row, field) for row in source.rows])


def load_pairs(path: str | Path) -> list[PromptResponse]:
    """(prompt, response) pairs: LMFlow text2text, or ``prompt``/``response`` records."""
    source = read_source(path)
    if source.format == "text2text":
        fields = ("input", "output")
    elif source.format == "records":
        fields = ("prompt", "response")
    else:
        raise source.error(
            f"expected (prompt, response) pairs (LMFlow text2text, or records with 'prompt' and "
            f"'response'); this is {source.describe()}"
        )
    return _non_empty(source, [_pair(source, row, *fields) for row in source.rows])


def load_texts(path: str | Path) -> list[str]:
    """Plain training texts: LMFlow text_only, ``.txt`` lines, or ``text`` records."""
    source = read_source(path)
    if source.format == "text2text":
        raise source.error(
            "expected plain texts (LMFlow text_only, .txt, or records with 'text'); "
            "this is LMFlow text2text: use load_pairs"
        )
    return _non_empty(source, [_string(source, row, "text") for row in source.rows])


def load_sft_examples(path: str | Path) -> list[PromptResponse]:
    """What an SFT job trains on: pairs where the data has them, else plain texts as responses to an
    empty prompt (so the loss covers the whole text). Records decide by their first row: ``prompt``
    means pairs, ``text`` means texts."""
    source = read_source(path)
    if source.format == "text2text":
        examples = [_pair(source, row, "input", "output") for row in source.rows]
    elif (
        source.format == "records"
        and source.rows
        and "text" in source.rows[0].fields
        and "prompt" not in source.rows[0].fields
    ):
        examples = [PromptResponse("", _string(source, row, "text")) for row in source.rows]
    elif source.format == "records":
        examples = [_pair(source, row, "prompt", "response") for row in source.rows]
    else:
        examples = [PromptResponse("", _string(source, row, "text")) for row in source.rows]
    return _non_empty(source, examples)


def load_preferences(path: str | Path) -> list[PreferencePair]:
    """Preference pairs: ``prompt``/``chosen``/``rejected`` records (responses to the prompt), or
    ``chosen``/``rejected`` texts. HH-RLHF dialogues that share everything but the last reply are
    split into that prompt and the two replies, so the reward-model job renders them in its prompt
    format; other texts are kept whole."""
    source = read_source(path)
    if source.format != "records":
        raise source.error(
            f"expected preference pairs (records with 'chosen' and 'rejected'); this is {source.describe()}"
        )
    pairs = []
    for row in source.rows:
        chosen, rejected = _string(source, row, "chosen"), _string(source, row, "rejected")
        if "prompt" in row.fields:
            pairs.append(PreferencePair(chosen, rejected, _string(source, row, "prompt")))
        else:
            pairs.append(_split_dialogues(chosen, rejected))
    return _non_empty(source, pairs)


def _split_dialogues(chosen: str, rejected: str) -> PreferencePair:
    if not (looks_like_dialogue(chosen) and looks_like_dialogue(rejected)):
        return PreferencePair(chosen, rejected)
    try:
        first, second = split_dialogue(chosen), split_dialogue(rejected)
    except ValueError:
        return PreferencePair(chosen, rejected)
    if first.prompt != second.prompt:
        return PreferencePair(chosen, rejected)
    return PreferencePair(first.response, second.response, first.prompt)


def _messages(source: Source, row: Row) -> str:
    value = row.fields.get("messages")
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise source.error("field 'messages' must be a list of {role, content} objects", row)
    try:
        text = messages_to_text(value)
    except ValueError as exc:
        raise source.error(str(exc), row) from exc
    if (why := lone_surrogate(text)) is not None:
        raise source.error(f"field 'messages' is not valid Unicode text: {why}", row)
    return text


def _pair(source: Source, row: Row, prompt_field: str, response_field: str) -> PromptResponse:
    # An empty response is legal (it trains the model to stop); an empty prompt is not a prompt.
    return PromptResponse(
        _string(source, row, prompt_field), _string(source, row, response_field, allow_empty=True)
    )


def _string(source: Source, row: Row, field: str, allow_empty: bool = False) -> str:
    if field not in row.fields:
        present = ", ".join(repr(k) for k in list(row.fields)[:6]) or "none"
        raise source.error(f"missing field {field!r} (fields present: {present})", row)
    value = row.fields[field]
    if not isinstance(value, str):
        raise source.error(f"field {field!r} must be a string, got {type(value).__name__}", row)
    if not allow_empty and not value.strip():
        raise source.error(f"field {field!r} is empty", row)
    if (why := lone_surrogate(value)) is not None:  # it would fail later, in a tokenizer or a write
        raise source.error(f"field {field!r} is not valid Unicode text: {why}", row)
    return value


def _non_empty(source: Source, items: list[T]) -> list[T]:
    if not items:
        raise DataError(f"{source.path}: no records (empty dataset)")
    return items
