"""The one error every data loader raises, so callers (the CLI, the worker, the orchestrator) can turn a
bad file into a clear message instead of a traceback."""

from __future__ import annotations


class DataError(ValueError):
    """A data file is missing, unreadable, of the wrong shape, or has a bad record.

    The message names the file and, for a bad record, its index and the field, e.g.
    ``data.jsonl: record 3 (line 4): missing field 'response'``.
    """
