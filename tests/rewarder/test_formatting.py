"""Pair formatting shared with the trainer: HH form, chat templates, and where prompt and response
sit in the text (the spans truncation and response-only losses depend on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.formatting import format_chat, format_hh, format_pair, resolve_style


def test_hh_form_and_spans():
    pair = format_hh("Why?", "Because.")
    assert pair.text == "\n\nHuman: Why?\n\nAssistant: Because."
    assert pair.prompt_span is not None and pair.response_span is not None
    assert pair.text[slice(*pair.prompt_span)] == "Why?"
    assert pair.text[slice(*pair.response_span)] == "Because."


@pytest.fixture(scope="module")
def tokenizer(tiny_models: dict[str, Path]):
    from raftflow.modeling import load_tokenizer

    return load_tokenizer(str(tiny_models["reward"]))


def test_auto_is_hh_without_a_template_and_chat_template_needs_one(tokenizer):
    assert resolve_style("auto", tokenizer) == "hh"
    assert resolve_style("auto", None) == "hh"
    with pytest.raises(ValueError, match="chat_template"):
        resolve_style("chat_template", tokenizer)


def test_chat_template_spans_survive_trimming_and_a_header_that_contains_the_prompt(tokenizer):
    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)  # a copy to modify
    tokenizer.chat_template = (
        "<|system|>a helpful assistant{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] | trim }}"
        "{% endfor %}"
    )
    assert resolve_style("auto", tokenizer) == "chat_template"
    assert resolve_style("hh", tokenizer) == "hh"
    pair = format_chat("  a ", "an answer", tokenizer)
    assert pair.text == "<|system|>a helpful assistant<|user|>a<|assistant|>an answer"
    assert pair.prompt_span is not None and pair.response_span is not None
    assert pair.prompt_span[0] == pair.text.index("<|user|>") + len("<|user|>")
    assert pair.text[slice(*pair.prompt_span)] == "a"
    assert pair.text[slice(*pair.response_span)] == "an answer"
    assert format_pair("  a ", "an answer", "auto", tokenizer) == pair
