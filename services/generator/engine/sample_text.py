"""What a sample's text may not end in, for every engine (no torch here: the vLLM engine imports it)."""

from __future__ import annotations


def without_partial_character(text: str) -> str:
    """``text`` without the U+FFFD that a length cut inside a multi-byte character decodes to at its
    end (a byte-level tokenizer spells one character over several tokens): that character was never
    finished, and the replacement mark would be scored and trained on as if the policy wrote it."""
    return text.rstrip("\ufffd")
