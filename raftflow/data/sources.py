"""Read a data file into rows of fields, whatever its container; the loaders then pick the fields.

Containers: LMFlow JSON (``{"type": ..., "instances": [...]}``), a JSON list of objects, JSON Lines
(``.jsonl``, optionally gzipped; a ``.json`` file that turns out to be JSON Lines is read as such), plain
text (``.txt``, one item per non-blank line) and a local Hugging Face ``datasets`` directory (written by
``save_to_disk``). Every failure is a :class:`DataError` naming the file, and the record when one is
at fault, so a user can fix the data without reading a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from raftflow.data.errors import DataError

# "records" covers every container of free-form objects (JSON Lines, JSON list, datasets dir); the
# LMFlow types and plain lines have fixed fields.
SourceFormat = Literal["text2text", "text_only", "lines", "records"]
LMFLOW_TYPES: tuple[SourceFormat, ...] = ("text2text", "text_only")


@dataclass(frozen=True, slots=True)
class Row:
    location: str  # "record 3", or "record 3 (line 5)" where a line number helps find it
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    format: SourceFormat
    rows: list[Row]

    def error(self, message: str, row: Row | None = None) -> DataError:
        where = f": {row.location}" if row is not None else ""
        return DataError(f"{self.path}{where}: {message}")

    def describe(self) -> str:
        return f"LMFlow {self.format}" if self.format in LMFLOW_TYPES else self.format


def read_source(path: str | Path) -> Source:
    """Rows of ``path``; raises :class:`DataError` for a missing, unreadable or malformed file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_datasets_dir(path)
    if not path.is_file():  # a FIFO or a device would block the reader or never end
        raise DataError(f"{path}: not a regular file")
    name = path.name.lower().removesuffix(".gz")
    try:
        text = _read_text(path, DataLimits().max_data_bytes)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable: {exc}") from exc
    if name.endswith(".txt"):
        return _lines(path, text)
    if name.endswith(".jsonl"):
        return _json_lines(path, text)
    if name.endswith(".json"):
        return _json_document(path, text)
    raise DataError(
        f"{path}: unsupported file type; expected .json (LMFlow or a list), .jsonl[.gz], .txt "
        "or a datasets directory"
    )


class DataLimits(BaseSettings):
    """How much text one data file may hold once decompressed: a small gzip file can inflate to
    gigabytes (a 411 KB file to 200 MB of text was seen), held in the memory of the orchestrator that
    validates a run's prompts."""

    model_config = SettingsConfigDict(env_prefix="RAFTFLOW_", extra="ignore")

    max_data_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Largest data file, in bytes of (decompressed) text; larger ones are refused.",
    )


def _read_text(path: Path, max_bytes: int) -> str:
    """The file's text, refused past ``max_bytes`` (counted after decompression, read no further)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DataError(
            f"{path}: over {max_bytes} bytes of text (RAFTFLOW_MAX_DATA_BYTES); split it or raise the limit"
        )
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()  # universal newlines, as before


def _lines(path: Path, text: str) -> Source:
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append(Row(f"record {len(rows)} (line {number})", {"text": line}))
    return Source(path, "lines", rows)


def _json_lines(path: Path, text: str) -> Source:
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        location = f"record {len(rows)} (line {number})"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: {location}: invalid JSON: {exc.msg}") from exc
        rows.append(Row(location, _as_object(path, location, value)))
    return Source(path, "records", rows)


def _json_document(path: Path, text: str) -> Source:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several top-level values: JSON Lines saved as .json
            return _json_lines(path, text)
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if isinstance(document, list):
        return Source(path, "records", _objects(path, document))
    if isinstance(document, dict) and "instances" in document:
        kind = document.get("type")
        if kind not in LMFLOW_TYPES:
            raise DataError(
                f"{path}: LMFlow type {kind!r} is not supported; expected one of {', '.join(LMFLOW_TYPES)}"
            )
        instances = document["instances"]
        if not isinstance(instances, list):
            raise DataError(f"{path}: 'instances' must be a list, got {type(instances).__name__}")
        return Source(path, kind, _objects(path, instances))
    keys = f" with keys {sorted(document)[:5]}" if isinstance(document, dict) else ""
    raise DataError(
        f"{path}: expected LMFlow JSON {{'type': ..., 'instances': [...]}} or a list of objects, "
        f"got {type(document).__name__}{keys}"
    )


def _objects(path: Path, values: list[Any]) -> list[Row]:
    return [Row(f"record {i}", _as_object(path, f"record {i}", value)) for i, value in enumerate(values)]


def _as_object(path: Path, location: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DataError(f"{path}: {location}: expected an object, got {type(value).__name__}")
    return value


def _read_datasets_dir(path: Path) -> Source:
    """A ``save_to_disk`` directory. ``datasets`` is imported only here: it is slow to import and most
    callers (the orchestrator) never read one."""
    from datasets import DatasetDict, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a datasets directory (save_to_disk) or unreadable: {exc}") from exc
    if isinstance(dataset, DatasetDict):
        splits = list(dataset)
        if "train" in dataset:
            dataset = dataset["train"]
        elif len(splits) == 1:
            dataset = dataset[splits[0]]
        else:
            raise DataError(f"{path}: datasets directory has splits {splits} and no 'train' split")
    return Source(path, "records", [Row(f"record {i}", row) for i, row in enumerate(dataset.to_list())])


def read_hub_dataset(name: str, split: str = "train", data_dir: str | None = None) -> Source:
    """Rows of a Hugging Face hub dataset (``datasets.load_dataset``), for machines that are online;
    e.g. ``Anthropic/hh-rlhf`` with ``data_dir="harmless-base"``. Failures become a DataError naming it."""
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, data_dir=data_dir, split=split)
    except Exception as exc:  # offline, unknown name or split: one clear message
        raise DataError(f"{name}: cannot load from the hub ({exc.__class__.__name__}: {exc})") from exc
    return Source(Path(name), "records", [Row(f"record {i}", row) for i, row in enumerate(dataset.to_list())])
