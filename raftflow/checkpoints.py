"""Is a directory a policy checkpoint the generator can serve? Asked before a run accepts a checkpoint
trained outside raftflow (``trainer: external``), so a wrong path is a 422 the user can fix while the
run keeps waiting, not a failed run at the next load; and by the generator's vLLM engine before it
overwrites the served weights in place (a reload cannot be undone half-way, so it is checked first).

The check is cheap even for a 7B model: config and tokenizer load, and the weight files' headers are
compared with the parameters the config's architecture declares (built on the ``meta`` device, no
memory); no tensor is read.
"""

from __future__ import annotations

import json
from pathlib import Path

_SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
_TORCH_BIN = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_GENERATIVE = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


class CheckpointRejected(ValueError):
    """Why a directory is not a servable causal-LM checkpoint (the message goes into the 422)."""


def check_checkpoint(path: str | Path) -> None:
    """Raise :class:`CheckpointRejected` naming the first problem found, else return."""
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointRejected(f"{path} is not a directory")
    names = {p.name for p in directory.iterdir()}
    has_weights = any(n in names for n in (*_SAFETENSORS, *_TORCH_BIN)) or any(
        n.startswith("model-") and n.endswith(".safetensors") for n in names
    )
    if "adapter_config.json" in names and not has_weights:
        raise CheckpointRejected(
            f"{path} holds a LoRA adapter, not a model: merge it into its base (peft merge_and_unload) "
            "and save the full model"
        )
    if "config.json" not in names:
        raise CheckpointRejected(f"{path} has no config.json")
    if not has_weights:
        raise CheckpointRejected(
            f"{path} has no weights (model.safetensors, its index, or pytorch_model.bin)"
        )

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(directory)
    except Exception as exc:  # any parse error is the checkpoint's fault
        raise CheckpointRejected(f"{path}/config.json does not load: {exc}") from exc
    named = getattr(config, "architectures", None) or []
    if named and not any(n.endswith(_GENERATIVE) for n in named):
        raise CheckpointRejected(
            f"{path}: config.json names {', '.join(named)}, not a causal language model (a reward model?)"
        )
    try:
        AutoTokenizer.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointRejected(f"{path}: no usable tokenizer beside the weights ({exc})") from exc
    try:
        import torch

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except Exception as exc:
        raise CheckpointRejected(
            f"{path}: config.json does not describe a causal language model ({exc})"
        ) from exc
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = safetensors_shapes(directory)
    if found is None:  # pickled .bin weights: their names cannot be read without loading them
        return
    if getattr(config.get_text_config(), "tie_word_embeddings", False):
        expected.pop("lm_head.weight", None)
    # Older checkpoints name weights without the base model's prefix ("h.0..." for "transformer.h.0...");
    # from_pretrained maps them, so the check does too.
    prefix = f"{model.base_model_prefix}." if model.base_model_prefix else ""
    found.update({prefix + k: v for k, v in list(found.items()) if not k.startswith(prefix)})
    missing = sorted(set(expected) - set(found))
    if missing:
        raise CheckpointRejected(
            f"{path}: {len(missing)} of the model's {len(expected)} weights are missing, e.g. {missing[0]} "
            "(a partial save, or another architecture than config.json names)"
        )
    wrong = [k for k in expected if found[k] != expected[k]]
    if wrong:
        raise CheckpointRejected(
            f"{path}: weight {wrong[0]} has shape {list(found[wrong[0]])}, config.json implies "
            f"{list(expected[wrong[0]])}"
        )


def safetensors_shapes(directory: str | Path) -> dict[str, tuple[int, ...]] | None:
    """Weight name -> shape, read from the safetensors headers (no tensor is loaded); None when the
    directory holds no safetensors weights."""
    from safetensors import safe_open

    directory = Path(directory)
    names = {p.name for p in directory.iterdir()}

    if "model.safetensors.index.json" in names:
        index = json.loads((directory / "model.safetensors.index.json").read_text())
        files = sorted(set(index["weight_map"].values()))
    elif "model.safetensors" in names:
        files = ["model.safetensors"]
    else:
        files = sorted(n for n in names if n.startswith("model-") and n.endswith(".safetensors"))
    if not files:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for name in files:
        try:
            with safe_open(str(directory / name), framework="pt") as weights:
                for key in weights.keys():  # noqa: SIM118 (safe_open is not a dict)
                    shapes[key] = tuple(weights.get_slice(key).get_shape())
        except Exception as exc:
            raise CheckpointRejected(
                f"{directory}/{name} is not a readable safetensors file ({exc})"
            ) from exc
    return shapes
