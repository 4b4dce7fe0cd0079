"""The one conversation contract: how a prompt becomes the text a model sees, for every service.

A prompt is a conversation (a list of turns). It travels between services and files as one string, so
LMFlow files, samples.json and API bodies need no second shape:

- HH-RLHF dialogue text, ``"\\n\\nHuman: Q\\n\\nAssistant: A\\n\\nHuman: Q2\\n\\nAssistant:"``, is parsed
  into alternating user/assistant turns (``"\\n\\nSystem: ..."`` turns are read too, so a system message
  survives the round trip); the trailing empty ``Assistant:`` is the generation prompt, not a turn;
- any other string is one user turn;
- OpenAI-style ``messages`` are turned into that dialogue text by :func:`messages_to_text`.

Every component renders through :func:`render_prompt` (what a policy is conditioned on) and
:func:`render_pair` (what a trainer trains on and a reward model scores), in one of three formats:

- ``hh``: the dialogue in HH-RLHF form, each turn wrapped exactly once, ending ``"\\n\\nAssistant:"``;
  the response follows after one space (the space is added only when the response does not already
  start with whitespace, so a sampled ``" Sure"`` and a stored ``"Sure"`` give the same text);
- ``chat_template``: the tokenizer's template, the generation prompt added; the pair is the template
  over the whole conversation with the response as the last assistant turn (TRL's prompt-completion
  convention), so its end-of-turn marker is part of what is trained on and scored;
- ``raw``: the prompt string exactly as given, the response appended as written (continuation tasks,
  base models, LMFlow's own RAFT).

``auto`` resolves, in order: the format a raftflow training job recorded in the checkpoint's config
(``raftflow_prompt_format``), the tokenizer's chat template when it has one, else ``hh``. Hence a run
over what ``raftflow data hh-rlhf`` writes, with no format named, wraps each turn exactly once in the
generator, the trainer and the rewarder alike.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PromptFormat = Literal["auto", "hh", "chat_template", "raw"]
ResolvedFormat = Literal["hh", "chat_template", "raw"]
Role = Literal["system", "user", "assistant"]
PROMPT_FORMATS: tuple[str, ...] = ("auto", "hh", "chat_template", "raw")
# The key under which training jobs record the format in a checkpoint's config.json.
CONFIG_KEY = "raftflow_prompt_format"

HH_TAGS: dict[Role, str] = {"system": "System", "user": "Human", "assistant": "Assistant"}
GENERATION_PROMPT = "\n\nAssistant:"
HH_STOP = ("\n\nHuman:", "\n\nAssistant:")
"""Where an hh response ends when the request names no stop strings: at the next turn's tag."""
# A turn tag at the start of the text or after a blank line; one space after the colon is the
# separator, not content.
_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant|System): ?")
_ROLES: dict[str, Role] = {tag: role for role, tag in HH_TAGS.items()}

Span = tuple[int, int]


class Message(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class RenderedPair:
    """A (prompt, response) pair as one text, and where its parts sit in it (character offsets).

    ``completion_start`` is where the model's part begins: ``text[:completion_start]`` is exactly the
    rendered prompt a generator conditions on. ``prompt_span`` is the conversation before the response
    (template header excluded), which a reward model truncates from the left first; ``response_span``
    is the response itself when the format kept it verbatim."""

    text: str
    completion_start: int
    prompt_span: Span | None
    response_span: Span | None

    @property
    def prompt_text(self) -> str:
        return self.text[: self.completion_start]

    @property
    def completion(self) -> str:
        return self.text[self.completion_start :]


def looks_like_dialogue(text: str) -> bool:
    """Whether ``text`` is HH dialogue text (starts with, or holds after a blank line, a turn tag)."""
    return _TURN.search(text) is not None


def parse_prompt(prompt: str) -> list[Message]:
    """The conversation a prompt string holds: HH dialogue turns, or the whole string as one user turn.

    A trailing empty ``Assistant:`` turn (the generation prompt) is dropped; text before the first tag,
    if any, is kept as a system turn rather than lost."""
    matches = list(_TURN.finditer(prompt))
    if not matches:
        return [{"role": "user", "content": prompt}]
    messages: list[Message] = []
    head = prompt[: matches[0].start()]
    if head.strip():
        messages.append({"role": "system", "content": head})
    for number, match in enumerate(matches):
        end = matches[number + 1].start() if number + 1 < len(matches) else len(prompt)
        messages.append({"role": _ROLES[match.group(1)], "content": prompt[match.end() : end]})
    if messages[-1]["role"] == "assistant" and not messages[-1]["content"].strip():
        messages.pop()
    return messages


def messages_to_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """OpenAI-style messages as prompt dialogue text (ending in the generation prompt); ValueError
    names the bad message. The inverse of :func:`parse_prompt` for user/assistant/system turns."""
    checked = validate_messages(messages)
    return "".join(f"\n\n{HH_TAGS[m['role']]}: {m['content']}" for m in checked) + GENERATION_PROMPT


def validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    if not messages:
        raise ValueError("messages: empty conversation")
    checked: list[Message] = []
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in HH_TAGS:
            raise ValueError(f"messages.{index}.role: {role!r} is not one of system, user, assistant")
        if not isinstance(content, str):
            raise ValueError(f"messages.{index}.content: must be a string")
        checked.append({"role": role, "content": content})
    return checked


def has_chat_template(tokenizer: PreTrainedTokenizerBase | None) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def recorded_format(config: Any) -> ResolvedFormat | None:
    """The format a raftflow job trained the checkpoint with (its config's ``raftflow_prompt_format``)."""
    value = getattr(config, CONFIG_KEY, None)
    return value if value in ("hh", "chat_template", "raw") else None


def resolve_format(
    fmt: PromptFormat,
    tokenizer: PreTrainedTokenizerBase | None,
    recorded: ResolvedFormat | None = None,
) -> ResolvedFormat:
    """``auto``: the recorded format, else the tokenizer's chat template, else hh. Asking for a chat
    template that does not exist is an error (a 4xx for a request, a start-up failure for a service)."""
    if fmt == "auto":
        if recorded == "chat_template" and not has_chat_template(tokenizer):
            recorded = None  # the template was removed since: fall through rather than fail
        if recorded is not None:
            return recorded
        return "chat_template" if has_chat_template(tokenizer) else "hh"
    if fmt == "chat_template" and not has_chat_template(tokenizer):
        raise ValueError("prompt format 'chat_template' needs a tokenizer with a chat_template; use 'hh'")
    return fmt


def render_prompt(prompt: str, fmt: ResolvedFormat, tokenizer: PreTrainedTokenizerBase | None = None) -> str:
    """The text a policy is conditioned on for ``prompt``."""
    if fmt == "raw":
        return prompt
    messages = parse_prompt(prompt)
    if fmt == "hh":
        return "".join(f"\n\n{HH_TAGS[m['role']]}: {m['content']}" for m in messages) + GENERATION_PROMPT
    return _template(tokenizer, messages, add_generation_prompt=True)


def render_pair(
    prompt: str, response: str, fmt: ResolvedFormat, tokenizer: PreTrainedTokenizerBase | None = None
) -> RenderedPair:
    """The text a trainer trains on and a reward model scores for (prompt, response)."""
    prompt_text = render_prompt(prompt, fmt, tokenizer)
    if fmt == "chat_template":
        full = _template(
            tokenizer, [*parse_prompt(prompt), {"role": "assistant", "content": response}], False
        )
        if not full.startswith(prompt_text):
            # A template that renders history differently once a reply follows (some drop reasoning):
            # condition on what the generator saw, then the reply as written.
            full = prompt_text + response
        start = _template_prefix_len(tokenizer, str(tokenizer.chat_template))  # type: ignore[union-attr]
        index = full.find(response, len(prompt_text)) if response else -1
        response_span = (index, index + len(response)) if index >= 0 else None
        return RenderedPair(
            full, len(prompt_text), (min(start, len(prompt_text)), len(prompt_text)), response_span
        )
    separator = " " if fmt == "hh" and response and not response[0].isspace() else ""
    text = prompt_text + separator + response
    begin = len(prompt_text) + len(separator)
    # hh: the first turn's tag stays when a reward model cuts a long conversation from the left.
    first = parse_prompt(prompt)[0] if fmt == "hh" else None
    head = len(f"\n\n{HH_TAGS[first['role']]}: ") if first is not None else 0
    return RenderedPair(text, len(prompt_text), (head, len(prompt_text)), (begin, len(text)))


def default_stop(fmt: ResolvedFormat) -> list[str]:
    """The stop strings a format implies when a request names none.

    ``hh`` has no end-of-turn token: a policy that has not learned to end on EOS writes on into an
    invented ``Human:`` turn and its own next answer, which would then be scored and trained on.
    LMFlow's RAFT cuts there too. A chat template ends its turn with its own token (EOS), and ``raw``
    has no turns, so neither implies a stop."""
    return list(HH_STOP) if fmt == "hh" else []


def adds_special_tokens(fmt: ResolvedFormat) -> bool:
    """Whether the tokenizer should add its special tokens (a BOS) to a rendered prompt: never for a
    chat template, which writes its own, so BOS is not doubled."""
    return fmt != "chat_template"


def encode_prompt(tokenizer: PreTrainedTokenizerBase, text: str, fmt: ResolvedFormat) -> list[int]:
    """Token ids of a rendered prompt, the same in the generator (conditioning) and the trainer."""
    return list(tokenizer(text, add_special_tokens=adds_special_tokens(fmt))["input_ids"])


def _template(
    tokenizer: PreTrainedTokenizerBase | None, messages: list[Message], add_generation_prompt: bool
) -> str:
    if not has_chat_template(tokenizer):
        raise ValueError("prompt format 'chat_template' needs a tokenizer with a chat_template; use 'hh'")
    assert tokenizer is not None
    return str(
        tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    )


@functools.lru_cache(maxsize=16)
def _template_prefix_len(tokenizer: PreTrainedTokenizerBase, template: str) -> int:
    """Characters the template writes before the first user's content (BOS, default system prompt,
    role header): a reward model truncating a long prompt cuts after them. Cached per (tokenizer,
    template): the prefix does not depend on the content."""
    sentinel = "\x00raftflow-prompt\x00"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": sentinel}], tokenize=False, add_generation_prompt=True
    )
    return max(str(rendered).find(sentinel), 0)
