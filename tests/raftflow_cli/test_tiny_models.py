"""``raftflow models init`` builds loadable, deterministic models offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.modeling import load_causal_lm, load_reward_model, load_tokenizer
from raftflow_cli.commands import main


def test_models_init_is_deterministic_and_loadable(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["models", "init", "--out", str(tmp_path / name), "--seed", "3"]) == 0
    for kind in ("policy", "reward"):
        first = (tmp_path / "a" / kind / "model.safetensors").read_bytes()
        assert first == (tmp_path / "b" / kind / "model.safetensors").read_bytes()
    main(["models", "init", "--out", str(tmp_path / "c"), "--seed", "4"])
    assert (tmp_path / "a" / "policy" / "model.safetensors").read_bytes() != (
        tmp_path / "c" / "policy" / "model.safetensors"
    ).read_bytes()

    tokenizer = load_tokenizer(str(tmp_path / "a" / "policy"), padding_side="left")
    policy = load_causal_lm(str(tmp_path / "a" / "policy"))
    reward = load_reward_model(str(tmp_path / "a" / "reward"))
    ids = tokenizer("Hello, world", return_tensors="pt")
    assert policy(**ids).logits.shape[-1] == len(tokenizer)
    assert reward(**ids).logits.shape == (1, 1)
    # Byte-level BPE: arbitrary text round-trips, nothing becomes <unk>.
    text = "naïve 日本 ✓ #42"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    # No temp dirs left behind by the atomic save.
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["policy", "reward"]


def test_reward_loader_refuses_a_multi_label_classifier(tmp_path: Path, tiny_models) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_models["reward"], num_labels=2, ignore_mismatched_sizes=True
    )
    model.save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match="num_labels=2"):
        load_reward_model(str(tmp_path / "two"))
