"""Values that decoded JSON (or any parsed data) can hold but no field can mean: non-finite numbers and
lone surrogates.

Python's ``json`` module accepts ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON at all) and turns
``1e400`` into ``inf``; it also decodes ``"\\ud800"`` into a string holding a lone UTF-16 surrogate,
which is no Unicode character: a tokenizer refuses it, and encoding it to UTF-8 (a response body, a
file) raises. Valid surrogate pairs (an emoji written as ``"\\ud83d\\ude00"``) decode to one
character and pass. The HTTP services refuse such bodies (``raftflow.server.json_body``), the data
loaders such records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")

_NOT_FINITE = (
    "Input should be a finite number (NaN, Infinity and values beyond the float range such as 1e400 "
    "are refused)"
)

Location = tuple[str | int, ...]
# (where in the body, pydantic-style error type, message)
BadValue = tuple[Location, str, str]


def first_bad_value(value: Any, path: Location = ()) -> BadValue | None:
    """``(location, error type, message)`` of the first non-finite number or lone surrogate in a
    decoded JSON value (keys included), else None."""
    for loc, item in _walk(value, path):
        if isinstance(item, float) and not math.isfinite(item):
            return loc, "finite_number", _NOT_FINITE
        if isinstance(item, str) and _SURROGATE.search(item):
            return loc, "string_unicode", f"Input should be valid Unicode text: {lone_surrogate(item)}"
    return None


def lone_surrogate(text: str) -> str | None:
    """Why ``text`` is not valid Unicode (where its first lone surrogate is), else None."""
    match = _SURROGATE.search(text)
    if match is None:
        return None
    code = f"U+{ord(match.group()):04X}"
    return f"it holds a lone surrogate ({code} at character {match.start()}), which is not a character"


def _walk(value: Any, path: Location) -> Iterator[tuple[Location, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), key
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))
    else:
        yield path, value


def safe_echo(value: Any) -> Any:
    """``value`` with what JSON cannot carry made printable (non-finite floats as their names, lone
    surrogates escaped), for echoing a refused input back in an error body."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {safe_echo(k): safe_echo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_echo(v) for v in value]
    return value
