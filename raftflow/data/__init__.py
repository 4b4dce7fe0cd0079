"""Data formats shared by the trainer, the orchestrator and the CLI.

Read: LMFlow JSON (text2text, text_only), JSON Lines, JSON lists, plain text and local Hugging Face
``datasets`` directories; HH-RLHF preference dialogues. Write: LMFlow text2text / text_only and
preference JSON Lines, atomically. Every loader fails with :class:`DataError` naming the file, the
record and the field. See docs/data.md.
"""

from raftflow.data.dialogue import split_dialogue
from raftflow.data.errors import DataError
from raftflow.data.hh_rlhf import ConversionReport, convert_hh_rlhf
from raftflow.data.loaders import load_pairs, load_preferences, load_prompts, load_sft_examples, load_texts
from raftflow.data.records import PreferencePair, PromptResponse
from raftflow.data.writers import write_preferences_jsonl, write_text2text, write_text_only

__all__ = [
    "ConversionReport",
    "DataError",
    "PreferencePair",
    "PromptResponse",
    "convert_hh_rlhf",
    "load_pairs",
    "load_preferences",
    "load_prompts",
    "load_sft_examples",
    "load_texts",
    "split_dialogue",
    "write_preferences_jsonl",
    "write_text2text",
    "write_text_only",
]
