"""Turn a (prompt, response) pair into the one text a reward model or a trainer sees.

A reward model scores well only on text shaped like its training data, and the trainer must train on
exactly the shape the rewarder scores, so both format through this module. Two shapes exist:

- ``chat_template``: the tokenizer's own template over ``[user: prompt, assistant: response]``
  (instruction-tuned reward models ship one);
- ``hh``: the HH-RLHF form ``"\\n\\nHuman: {prompt}\\n\\nAssistant: {response}"`` that classic reward
  models (and the tokenizers without a template) are trained on.

Besides the text, the character spans of the prompt and the response inside it are returned: the
rewarder truncates the prompt from the left (it needs the prompt span), and a trainer masking the loss
to the response needs the response span. A template may rewrite content (many ``trim`` it), so spans
are found by searching the rendered text after the template's fixed prefix; a span that cannot be found
is ``None`` and callers fall back to treating the text as a whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FormatStyle = Literal["auto", "chat_template", "hh"]
ResolvedStyle = Literal["chat_template", "hh"]

HH_HUMAN = "\n\nHuman: "
HH_ASSISTANT = "\n\nAssistant: "

# Stands in for the prompt when rendering a template to learn what it puts before the first message.
_SENTINEL = "\x00raftflow-prompt\x00"

Span = tuple[int, int]


@dataclass(frozen=True)
class FormattedPair:
    """The formatted text and where the prompt and response sit in it (character offsets)."""

    text: str
    prompt_span: Span | None
    response_span: Span | None


def has_chat_template(tokenizer: PreTrainedTokenizerBase | None) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def resolve_style(style: FormatStyle, tokenizer: PreTrainedTokenizerBase | None) -> ResolvedStyle:
    """``auto`` means: the tokenizer's chat template when it has one, else HH. Asking for a chat
    template that does not exist is a configuration error, reported at start-up rather than per item."""
    if style == "auto":
        return "chat_template" if has_chat_template(tokenizer) else "hh"
    if style == "chat_template" and not has_chat_template(tokenizer):
        raise ValueError("format 'chat_template' needs a tokenizer with a chat_template; use 'hh' or 'auto'")
    return style


def format_hh(prompt: str, response: str) -> FormattedPair:
    text = f"{HH_HUMAN}{prompt}{HH_ASSISTANT}{response}"
    prompt_start = len(HH_HUMAN)
    response_start = prompt_start + len(prompt) + len(HH_ASSISTANT)
    return FormattedPair(
        text=text,
        prompt_span=(prompt_start, prompt_start + len(prompt)),
        response_span=(response_start, response_start + len(response)),
    )


def conversation(prompt: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def format_chat(prompt: str, response: str, tokenizer: PreTrainedTokenizerBase) -> FormattedPair:
    text = tokenizer.apply_chat_template(conversation(prompt, response), tokenize=False)
    prompt_span = _find(text, prompt, _template_prefix_len(tokenizer, str(tokenizer.chat_template)))
    response_span = _find(text, response, prompt_span[1] if prompt_span else 0, last=prompt_span is None)
    return FormattedPair(text=text, prompt_span=prompt_span, response_span=response_span)


def format_pair(
    prompt: str, response: str, style: FormatStyle, tokenizer: PreTrainedTokenizerBase | None = None
) -> FormattedPair:
    if resolve_style(style, tokenizer) == "chat_template":
        assert tokenizer is not None  # resolve_style refused a template style without one
        return format_chat(prompt, response, tokenizer)
    return format_hh(prompt, response)


@functools.lru_cache(maxsize=16)
def _template_prefix_len(tokenizer: PreTrainedTokenizerBase, template: str) -> int:
    """Characters the template writes before the user's content (BOS, system prompt, role header).

    Searching for the prompt only after them keeps a short prompt such as ``"a"`` from matching inside
    the header. Cached per (tokenizer, template): the prefix does not depend on the content, and keying on
    the template text keeps a template changed in place from using a stale prefix.
    """
    rendered = tokenizer.apply_chat_template(conversation(_SENTINEL, ""), tokenize=False)
    index = rendered.find(_SENTINEL)
    return max(index, 0)


def _find(text: str, needle: str, start: int, last: bool = False) -> Span | None:
    """The span of ``needle`` (or of its stripped form, for templates that trim) in ``text``."""
    for candidate in (needle, needle.strip()):
        index = text.rfind(candidate, start) if last else text.find(candidate, start)
        if index >= 0:
            return (index, index + len(candidate))
    return None
