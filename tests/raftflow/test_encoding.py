"""The truncation rule on its own: which token positions survive, and that untruncated items encode
exactly as ``tokenizer(text)`` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.conversation import render_pair
from raftflow.encoding import Encoder, kept_positions


def test_nothing_is_dropped_when_it_fits():
    assert kept_positions(5, 5, [0] * 5, None, None) == [0, 1, 2, 3, 4]


def test_without_a_prompt_span_the_last_tokens_stay():
    assert kept_positions(6, 4, [0] * 6, None, None) == [2, 3, 4, 5]


def test_prompt_tokens_go_first_from_the_left():
    # positions: 0 header, 1-4 prompt, 5-7 tag + response; chars: one per token
    offsets = [(i, i + 1) for i in range(8)]
    assert kept_positions(8, 6, [0] * 8, offsets, (1, 5)) == [0, 3, 4, 5, 6, 7]


def test_once_the_prompt_is_gone_the_start_of_the_rest_goes():
    offsets = [(i, i + 1) for i in range(8)]
    assert kept_positions(8, 3, [0] * 8, offsets, (1, 5)) == [5, 6, 7]


def test_special_tokens_at_both_ends_are_kept():
    # positions: 0 BOS, 1-6 one char each (prompt = chars 1-3 = positions 2-4), 7 EOS
    offsets = [(0, 0)] + [(i, i + 1) for i in range(6)] + [(0, 0)]
    special = [1, 0, 0, 0, 0, 0, 0, 1]
    assert kept_positions(8, 5, special, offsets, (1, 4)) == [0, 1, 5, 6, 7]
    assert kept_positions(8, 3, special, offsets, None) == [0, 6, 7]


def test_a_token_reaching_into_the_prompt_counts_as_prompt():
    # byte-level BPE glues the template's trailing space to the prompt's first word: (2, 5) starts at 2
    offsets = [(0, 2), (2, 5), (5, 8), (8, 10)]
    assert kept_positions(4, 3, [0] * 4, offsets, (3, 8)) == [0, 2, 3]


@pytest.fixture(scope="module")
def encoder(tiny_models: dict[str, Path]) -> Encoder:
    from raftflow.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_models["reward"]))
    return Encoder(tokenizer, max_length=24, input_names=tokenizer.model_input_names)


def test_untruncated_items_encode_like_the_tokenizer(encoder: Encoder):
    texts = ["A short one.", "Another short text here."]
    encoded = encoder.encode(texts, [None, None], add_special_tokens=True)
    for text, item in zip(texts, encoded, strict=True):
        reference = encoder.tokenizer(text)
        # Every model input the tokenizer produces (the tiny one: input_ids only, besides the mask).
        for name in set(reference) - {"attention_mask"}:
            assert item.features[name] == reference[name]
        assert set(item.features) == set(reference) - {"attention_mask"}
        assert "attention_mask" not in item.features and not item.truncated


def test_a_long_pair_is_cut_to_max_length_keeping_the_response(encoder: Encoder):
    pair = render_pair("one two three four five six seven eight nine ten eleven twelve", "Yes.", "hh")
    (item,) = encoder.encode([pair.text], [pair.prompt_span], add_special_tokens=True)
    assert item.truncated and len(item) == 24
    decoded = encoder.tokenizer.decode(item.features["input_ids"])
    assert decoded.startswith("\n\nHuman:") and decoded.endswith("twelve\n\nAssistant: Yes.")
