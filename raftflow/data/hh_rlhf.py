"""Anthropic HH-RLHF: split dialogues and convert a file into LMFlow-RAFT's three training sets.

An HH-RLHF record is ``{"chosen": dialogue, "rejected": dialogue}``; both dialogues share every turn
but the last assistant reply, in the form ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. The prompt is
everything up to and including the last ``"\\n\\nAssistant:"`` (what the policy is asked to continue)
and the response is the last reply without its leading space.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftflow.data.dialogue import split_dialogue
from raftflow.data.errors import DataError
from raftflow.data.records import PreferencePair, PromptResponse
from raftflow.data.sources import Source, read_source
from raftflow.data.writers import write_preferences_jsonl, write_text2text, write_text_only

SFT_FILE = "sft.json"
REWARD_PAIRS_FILE = "reward_pairs.jsonl"
PROMPTS_FILE = "prompts.json"


@dataclass
class ConversionReport:
    """What the converter kept and dropped, and why: a silent drop would skew the data unnoticed."""

    records: int = 0
    malformed: int = 0
    sft_examples: int = 0
    reward_pairs: int = 0
    identical_pairs: int = 0  # chosen == rejected: no preference to learn, left out of reward pairs
    prompts: int = 0
    duplicate_prompts: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"records read: {self.records}", f"malformed (dropped): {self.malformed}"]
        out += [f"  {reason}: {count}" for reason, count in sorted(self.reasons.items())]
        out += [
            f"{SFT_FILE}: {self.sft_examples} (prompt + chosen response, LMFlow text2text)",
            f"{REWARD_PAIRS_FILE}: {self.reward_pairs} (identical pairs dropped: {self.identical_pairs})",
            f"{PROMPTS_FILE}: {self.prompts} (duplicates dropped: {self.duplicate_prompts})",
        ]
        return out


def convert_hh_rlhf(
    source_path: str | Path | Source, out_dir: str | Path, limit: int | None = None
) -> ConversionReport:
    """Write ``sft.json``, ``reward_pairs.jsonl`` and ``prompts.json`` into ``out_dir``.

    Malformed records (missing or non-string fields, no assistant turn, an empty chosen reply, or
    chosen and rejected with different prompts) are dropped and counted by reason. Raises
    :class:`DataError` when the file cannot be read or nothing usable is left; then nothing is written.
    """
    source = source_path if isinstance(source_path, Source) else read_source(source_path)
    rows = source.rows[:limit] if limit is not None else source.rows
    report = ConversionReport(records=len(rows))
    sft: list[PromptResponse] = []
    pairs: list[PreferencePair] = []
    prompts: dict[str, None] = {}  # ordered set
    for row in rows:
        reason = _problem(row.fields)
        if reason is not None:
            report.malformed += 1
            report.reasons[reason] = report.reasons.get(reason, 0) + 1
            continue
        chosen, rejected = row.fields["chosen"], row.fields["rejected"]
        example = split_dialogue(chosen)
        sft.append(example)
        if chosen == rejected:
            report.identical_pairs += 1
        else:
            pairs.append(PreferencePair(chosen, rejected))
        if example.prompt in prompts:
            report.duplicate_prompts += 1
        prompts[example.prompt] = None
    if not sft:
        raise DataError(f"{source.path}: no usable HH-RLHF records ({report.malformed} malformed)")
    report.sft_examples, report.reward_pairs, report.prompts = len(sft), len(pairs), len(prompts)

    out = Path(out_dir)
    write_text2text(out / SFT_FILE, sft)
    write_preferences_jsonl(out / REWARD_PAIRS_FILE, pairs)
    write_text_only(out / PROMPTS_FILE, list(prompts))
    return report


def _problem(fields: Mapping[str, Any]) -> str | None:
    """Why a record is unusable, or None."""
    for name in ("chosen", "rejected"):
        if not isinstance(fields.get(name), str):
            return f"missing or non-string '{name}'"
    try:
        chosen = split_dialogue(fields["chosen"])
        rejected = split_dialogue(fields["rejected"])
    except ValueError:
        return "no assistant turn"
    if not chosen.response.strip():
        return "empty chosen response"
    if chosen.prompt != rejected.prompt:
        return "chosen and rejected prompts differ"
    return None
