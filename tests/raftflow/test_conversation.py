"""The conversation contract: parsing prompts (HH multi-turn, plain, messages) and rendering them in
each format, the way every service does."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from raftflow.conversation import (
    messages_to_text,
    parse_prompt,
    recorded_format,
    render_pair,
    render_prompt,
    resolve_format,
)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MULTI = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke.\n\nAssistant:"


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    from raftflow.modeling import load_tokenizer

    target = tmp_path_factory.mktemp("chatml") / "policy"
    shutil.copytree(tiny_models["policy"], target)
    tokenizer = load_tokenizer(str(target))
    tokenizer.chat_template = CHATML
    return tokenizer


def test_hh_dialogue_parses_into_alternating_turns_without_the_generation_prompt():
    assert parse_prompt(MULTI) == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert parse_prompt("Just a question?") == [{"role": "user", "content": "Just a question?"}]
    assert parse_prompt("Human: no blank line first\n\nAssistant:") == [
        {"role": "user", "content": "no blank line first"}
    ]


def test_messages_round_trip_through_dialogue_text():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    text = messages_to_text(messages)
    assert text == "\n\nSystem: Be brief.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Bye\n\nAssistant:"
    assert parse_prompt(text) == messages
    with pytest.raises(ValueError, match=r"messages.1.role"):
        messages_to_text([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}])


def test_hh_wraps_each_turn_exactly_once_whatever_the_prompt_already_holds():
    assert render_prompt(MULTI, "hh") == MULTI  # HH text is not wrapped again
    assert render_prompt("Q", "hh") == "\n\nHuman: Q\n\nAssistant:"
    assert render_prompt(render_prompt("Q", "hh"), "hh") == "\n\nHuman: Q\n\nAssistant:"
    # One space between the tag and a reply: added for a stored reply, kept from a sampled one.
    assert render_pair("Q", "Sure.", "hh").text == "\n\nHuman: Q\n\nAssistant: Sure."
    assert render_pair("Q", " Sure.", "hh").text == "\n\nHuman: Q\n\nAssistant: Sure."
    pair = render_pair(MULTI, "Why not?", "hh")
    assert pair.prompt_text == MULTI and pair.text[slice(*pair.response_span)] == "Why not?"
    assert pair.text.count("\n\nHuman:") == 2


def test_raw_keeps_the_text_as_written():
    assert render_prompt("The early bird", "raw") == "The early bird"
    pair = render_pair("The early bird", " gets the worm", "raw")
    assert pair.text == "The early bird gets the worm" and pair.completion == " gets the worm"


def test_chat_template_renders_multi_turn_hh_as_messages(chat_tokenizer):
    prompt_text = render_prompt(MULTI, "chat_template", chat_tokenizer)
    assert prompt_text == (
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
        "<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n"
    )
    pair = render_pair(MULTI, "No.", "chat_template", chat_tokenizer)
    assert pair.prompt_text == prompt_text
    assert pair.completion == "No.<|im_end|>\n"  # the turn's end is trained on and scored
    assert pair.text[slice(*pair.response_span)] == "No."
    assert "Human:" not in pair.text


def test_auto_prefers_the_recorded_format_then_the_template_then_hh(chat_tokenizer, tiny_models):
    from raftflow.modeling import load_tokenizer

    plain = load_tokenizer(str(tiny_models["policy"]))
    assert resolve_format("auto", plain) == "hh"
    assert resolve_format("auto", chat_tokenizer) == "chat_template"
    assert resolve_format("auto", chat_tokenizer, "raw") == "raw"
    assert resolve_format("auto", plain, "chat_template") == "hh"  # template gone since: not an error
    assert resolve_format("hh", chat_tokenizer) == "hh"
    with pytest.raises(ValueError, match="chat_template"):
        resolve_format("chat_template", plain)
    assert recorded_format(SimpleNamespace(raftflow_prompt_format="hh")) == "hh"
    assert recorded_format(SimpleNamespace()) is None
