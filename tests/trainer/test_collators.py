"""Token-level data for training: which tokens carry loss, truncation, and the pairwise batch layout.

The tiny tokenizer's pad token IS its EOS, the case where masking labels by pad id silently drops the
EOS the model must learn; these tests pin that down."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.data import PreferencePair, PromptResponse
from raftflow.modeling import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_models: dict[str, Path]):
    tok = load_tokenizer(str(tiny_models["policy"]))
    assert tok.pad_token_id == tok.eos_token_id
    return tok


def test_response_only_labels_keep_eos_and_mask_prompt_and_padding(tokenizer) -> None:
    from services.trainer.sft_data import IGNORE_INDEX, SFTCollator, tokenize_sft

    examples = [
        PromptResponse("Q: hi\nA:", " hello there"),
        PromptResponse("Q: a much longer question?\nA:", " ok"),
    ]
    features, dropped = tokenize_sft(examples, tokenizer, max_length=64, loss_on="response")
    assert dropped == 0
    batch = SFTCollator(tokenizer.pad_token_id)(features)
    eos = tokenizer.eos_token_id
    for row, example in enumerate(examples):
        prompt_len = len(tokenizer(example.prompt)["input_ids"])
        response_ids = tokenizer(example.response)["input_ids"] + [eos]
        length = prompt_len + len(response_ids)
        labels = batch["labels"][row].tolist()
        assert labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
        assert labels[prompt_len:length] == response_ids  # EOS included although it equals the pad id
        assert labels[length:] == [IGNORE_INDEX] * (len(labels) - length)
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (len(labels) - length)
        assert batch["input_ids"][row, length:].eq(tokenizer.pad_token_id).all()


def test_loss_on_all_labels_the_prompt_too(tokenizer) -> None:
    from services.trainer.sft_data import IGNORE_INDEX, SFTCollator, tokenize_sft

    features, _ = tokenize_sft([PromptResponse("Q: hi\nA:", " yo")], tokenizer, 64, loss_on="all")
    batch = SFTCollator(tokenizer.pad_token_id)(features)
    assert IGNORE_INDEX not in batch["labels"][0].tolist()
    assert batch["labels"][0].tolist() == batch["input_ids"][0].tolist()


def test_truncation_keeps_the_start_and_drops_examples_without_response(tokenizer) -> None:
    from services.trainer.sft_data import tokenize_sft

    long_prompt = PromptResponse("word " * 50, " answer")
    fits = PromptResponse("Q:", " a fairly long answer " * 5)
    features, dropped = tokenize_sft([long_prompt, fits], tokenizer, max_length=12, loss_on="response")
    assert dropped == 1
    assert len(features) == 1 and len(features[0]["input_ids"]) == 12
    assert features[0]["input_ids"][:2] == tokenizer("Q:")["input_ids"][:2]


def test_pairs_keep_the_end_and_batch_chosen_before_rejected(tokenizer) -> None:
    from services.trainer.reward_data import PairCollator, split_holdout, tokenize_pairs

    pairs = [PreferencePair("intro " * 30 + "good end", "bad"), PreferencePair("fine", "awful")]
    features = tokenize_pairs(pairs, tokenizer, max_length=8)
    assert features[0]["chosen_ids"] == tokenizer(pairs[0].chosen)["input_ids"][-8:]
    batch = PairCollator(tokenizer.pad_token_id)(features)
    assert batch["input_ids"].shape[0] == 4
    assert batch["input_ids"][1, : len(features[1]["chosen_ids"])].tolist() == features[1]["chosen_ids"]
    assert batch["attention_mask"][2].sum().item() == len(features[0]["rejected_ids"])

    train, held = split_holdout(list(range(10)), 0.25, seed=3)
    assert (len(train), len(held)) == (8, 2) and sorted(train + held) == list(range(10))
    assert split_holdout(list(range(10)), 0.25, seed=3) == (train, held)
    assert split_holdout([1, 2], 0.01, seed=0)[1] != []  # at least one held out
    assert split_holdout([1, 2, 3], 0.0, seed=0)[1] == []


def test_long_pairs_keep_the_encoder_special_tokens_and_cut_the_prompt_first(tmp_path: Path) -> None:
    """A BERT-style reward model reads [CLS]: a long pair must keep it (and [SEP]), losing the oldest
    prompt words instead, token for token what the rewarder's encoder sends the model at serving."""
    from transformers import BertTokenizerFast

    from raftflow.conversation import render_pair
    from raftflow.encoding import Encoder
    from services.trainer.reward_data import tokenize_pairs

    words = ["human", "assistant", ":", "tell", "me", "a", "story", "once", "upon", "time", "good", "bad"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    bert = BertTokenizerFast(vocab_file=str(vocab))
    prompt = "\n\nHuman: tell me a story " + "once upon a time " * 10
    pair = PreferencePair("good good", "bad", prompt)

    [features] = tokenize_pairs([pair], bert, max_length=12, prompt_format="hh")
    chosen = features["chosen_ids"]
    assert len(chosen) == 12
    assert chosen[0] == bert.cls_token_id and chosen[-1] == bert.sep_token_id
    # the first turn's tag stays, the oldest story words go, the whole reply stays
    expected = ["[CLS]", "human", ":", "once", "upon", "a", "time"]
    expected += ["assistant", ":", "good", "good", "[SEP]"]
    assert bert.convert_ids_to_tokens(chosen) == expected
    rendered = render_pair(prompt, pair.chosen, "hh", bert)
    served = Encoder(bert, 12, ["input_ids"]).encode([rendered.text], [rendered.prompt_span], True)
    assert served[0].features["input_ids"] == chosen
    assert features["rejected_ids"][0] == bert.cls_token_id
