"""Is a directory a policy checkpoint the generator can serve? Asked before a run accepts a checkpoint
trained outside raftflow (``trainer: external``), so a wrong path is a 422 the user can fix while the
run keeps waiting, not a failed run at the next load; and by the generator's vLLM engine before it
overwrites the served weights in place (a reload cannot be undone half-way, so it is checked first).

The check is cheap even for a 7B model: config and tokenizer load, and the weight files' headers are
compared with the parameters the config's architecture declares (built on the ``meta`` device, no
memory); no tensor is read. With the caller's roots it opens nothing that leads out of them (symlinks,
a ``weight_map`` naming ``../..``, a LoRA adapter's base model), and it refuses what the generator
would: pickle-only weights, a malformed index (a 422 naming the file, never a 500).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

from raftflow.modeling import PICKLE_WEIGHT_PATTERNS
from raftflow.paths import (
    ADAPTER_CONFIG,
    PathNotAllowed,
    confine_adapter_base,
    confine_checkpoint_files,
)

_INDEX = "model.safetensors.index.json"
_SAFETENSORS = ("model.safetensors", _INDEX)
_GENERATIVE = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


class CheckpointRejected(ValueError):
    """Why a directory is not a servable causal-LM checkpoint (the message goes into the 422)."""


class CheckpointLeavesRoots(CheckpointRejected):
    """The checkpoint would have something read outside the allowed roots (callers name their setting)."""


def check_checkpoint(path: str | Path, roots: Sequence[str | Path] = (), *, hub_ids: bool = True) -> None:
    """Raise :class:`CheckpointRejected` naming the first problem found, else return.

    ``path`` is already confined by the caller. With ``roots``, nothing the check (or a loader after it)
    would open may lead out of them: every entry of the directory (and of its subdirectories) must
    resolve inside the directory or a root, so a symlinked ``config.json`` or weight file pointing
    elsewhere is refused without being opened, and its message is the same whether the target exists
    or not; so must a file ``tokenizer_config.json`` names (``*_file``), and a LoRA adapter's base model
    (:func:`raftflow.paths.confine_adapter_base`, a hub id allowed where ``hub_ids``). Roots or not,
    the index's ``weight_map`` may only name plain files inside the directory.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointRejected(f"{path} is not a directory")
    if roots:
        _check_contained(directory, roots)
    names = {p.name for p in directory.iterdir()}
    has_safetensors = any(n in names for n in _SAFETENSORS) or any(
        n.startswith("model-") and n.endswith(".safetensors") for n in names
    )
    pickled = sorted(n for n in names if any(fnmatch(n, pattern) for pattern in PICKLE_WEIGHT_PATTERNS))
    if ADAPTER_CONFIG in names:
        if not has_safetensors and not any(n.startswith("pytorch_model") for n in pickled):
            raise CheckpointRejected(
                f"{path} holds a LoRA adapter, not a model: merge it into its base (peft "
                "merge_and_unload) and save the full model"
            )
        try:  # the services load an adapter's base model, wherever the adapter says it is
            confine_adapter_base(directory, roots, hub_ids=hub_ids)
        except PathNotAllowed as exc:
            raise CheckpointLeavesRoots(str(exc)) from None
    if "config.json" not in names:
        raise CheckpointRejected(f"{path} has no config.json")
    if not has_safetensors:
        if pickled:  # what the generator refuses (raftflow.modeling.check_weights_format), said now
            raise CheckpointRejected(
                f"{path} has only pickle weights ({', '.join(pickled)}), no model.safetensors: the "
                "generator loads safetensors only, because unpickling a checkpoint can run arbitrary "
                "code. Save it with save_pretrained(dir, safe_serialization=True)."
            )
        raise CheckpointRejected(f"{path} has no weights (model.safetensors or its index)")
    # Read before transformers parses anything: a malformed index or a weight_map naming a file
    # elsewhere is refused here, with the file and the problem named.
    found = safetensors_shapes(directory)

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
    if found is None:  # not reached: safetensors weights were found above
        raise CheckpointRejected(f"{path} has no weights (model.safetensors or its index)")
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
    directory holds no safetensors weights. A malformed index, or one whose ``weight_map`` names
    anything but a plain file in ``directory``, is :class:`CheckpointRejected` (nothing else opened)."""
    from safetensors import safe_open

    directory = Path(directory)
    names = {p.name for p in directory.iterdir()}

    if _INDEX in names:
        files = _indexed_files(directory)
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


def _indexed_files(directory: Path) -> list[str]:
    """The weight files ``model.safetensors.index.json`` names: plain file names, so they are read
    inside ``directory`` (``..``, a separator or an absolute path is refused before anything is
    opened, so the answer cannot tell whether such a file exists)."""
    where = f"{directory}/{_INDEX}"
    try:
        index = json.loads((directory / _INDEX).read_text())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise CheckpointRejected(f"{where} is not a readable JSON file ({exc})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointRejected(
            f"{where} has no weight_map (an object mapping each weight's name to its .safetensors file)"
        )
    for name in weight_map.values():
        if not isinstance(name, str) or not _plain_file_name(name):
            raise CheckpointRejected(
                f"{where}: weight_map names {name!r}, not the name of a file in the checkpoint directory"
            )
    return sorted(set(weight_map.values()))


def _plain_file_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and os.sep not in name and "\0" not in name


def _check_contained(directory: Path, roots: Sequence[str | Path]) -> None:
    """:func:`raftflow.paths.confine_checkpoint_files`, as a checkpoint refusal."""
    try:
        confine_checkpoint_files(directory, roots)
    except PathNotAllowed as exc:
        raise CheckpointLeavesRoots(str(exc)) from None
