"""The demo's tiny models: :func:`raftflow.tiny_models.build_models`, with the tokenizer told which
inputs a GPT-2 takes.

Why the extra step: a ``PreTrainedTokenizerFast`` built from a raw ``tokenizers`` object lists
``token_type_ids`` among its model inputs (the base-class default), and a GPT-2 does not ignore them:
it ADDS the embedding of token id 0 to every position when they are passed. The trainer passes only
ids and mask, the rewarder passes every input the tokenizer produces, so a reward model trained by one
and served by the other scores a different function (measured: 0.755 held-out pair accuracy in the
trainer's evaluation, near-constant scores with a 0.05 spread through the rewarder). GPT-2's own
tokenizer lists ``["input_ids", "attention_mask"]``; writing that into ``tokenizer_config.json``
makes every consumer agree. The checkpoints the trainer saves copy the setting on.
"""

from __future__ import annotations

from pathlib import Path

from raftflow.atomic import read_json, write_json_atomic
from raftflow.tiny_models import TinyModelConfig, build_models

GPT2_INPUTS = ["input_ids", "attention_mask"]


def build_demo_models(out_dir: str | Path, config: TinyModelConfig) -> dict[str, Path]:
    """``{"policy": path, "reward": path}``: the tiny models, each tokenizer limited to GPT-2's inputs."""
    paths = build_models(out_dir, config)
    for path in paths.values():
        set_model_input_names(path, GPT2_INPUTS)
    return paths


def set_model_input_names(model_dir: Path, names: list[str]) -> None:
    """Record ``model_input_names`` in the tokenizer config (read back by ``from_pretrained``)."""
    config_path = Path(model_dir) / "tokenizer_config.json"
    config = read_json(config_path)
    config["model_input_names"] = list(names)
    write_json_atomic(config_path, config)
