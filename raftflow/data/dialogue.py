"""Split an HH-RLHF dialogue into the conversation so far and its last assistant reply."""

from __future__ import annotations

from raftflow.data.records import PromptResponse

ASSISTANT_TAG = "\n\nAssistant:"


def split_dialogue(dialogue: str) -> PromptResponse:
    """(prompt ending in ``"\\n\\nAssistant:"``, last assistant reply); :class:`ValueError` when the
    dialogue has no assistant turn."""
    cut = dialogue.rfind(ASSISTANT_TAG)
    if cut < 0:
        raise ValueError("no '\\n\\nAssistant:' turn")
    end = cut + len(ASSISTANT_TAG)
    return PromptResponse(dialogue[:end], dialogue[end:].removeprefix(" "))
