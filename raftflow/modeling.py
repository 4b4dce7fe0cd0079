"""Loading tokenizers and models the same way in every service.

One function per kind of model, so the generator, rewarder and trainer agree on padding side, pad
token, dtype and device. ``from_pretrained`` takes a local directory or a hub id (a hub id needs
network access; set ``HF_HUB_OFFLINE=1`` offline, or it retries for ~45 s before failing).

Safety defaults: weights load from safetensors only (``use_safetensors=True``: a pickle-based
``pytorch_model.bin`` is refused, with :class:`UnsafeCheckpoint` naming the files for a local
directory) and ``trust_remote_code`` is off unless the caller turns it on; while it is off, a config
or tokenizer config that asks for custom code (``auto_map``) is refused too, rather than silently
loaded with the built-in class of its ``model_type``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from raftflow.conversation import CONFIG_KEY
from raftflow.encoding import MAX_LENGTH_KEY

if TYPE_CHECKING:  # torch is heavy and must not be imported by the Celery parent process
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

PaddingSide = Literal["left", "right"]

# Weight files that are pickles (torch.save): loading one can run arbitrary code.
PICKLE_WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


class UnsafeCheckpoint(ValueError):
    """A checkpoint refused for safety: pickle-only weights, or custom code while trust_remote_code
    is off. Services report it as the reason a load failed (the generator's 422, the rewarder's
    start-up error)."""


def check_weights_format(name_or_path: str) -> None:
    """Refuse a local checkpoint whose weights exist only as pickles.

    ``use_safetensors=True`` already refuses them, but with "no file named model.safetensors", which
    does not say why; this names the files and the remedy. Hub ids are left to ``use_safetensors``.
    """
    path = Path(name_or_path)
    if not path.is_dir() or any(path.glob("*.safetensors")):
        return
    pickled = sorted({file.name for pattern in PICKLE_WEIGHT_PATTERNS for file in path.glob(pattern)})
    if pickled:
        raise UnsafeCheckpoint(
            f"{name_or_path} has only pickle weights ({', '.join(pickled)}), no .safetensors: raftflow "
            "loads safetensors only, because unpickling a checkpoint can run arbitrary code. Convert it "
            "where you trust it: save_pretrained(dir, safe_serialization=True)."
        )


def check_remote_code(name_or_path: str, trust_remote_code: bool = False) -> None:
    """Refuse a checkpoint whose config.json or tokenizer_config.json maps Auto classes to its own
    code (``auto_map``) while ``trust_remote_code`` is off.

    transformers never runs that code with ``trust_remote_code=False``, but when ``model_type`` is
    one it knows it silently loads its built-in class instead, which may not be the model the repo
    describes. Refusing says what happened and which setting decides (RAFTFLOW_TRUST_REMOTE_CODE).
    """
    if trust_remote_code:
        return
    for filename in ("config.json", "tokenizer_config.json"):
        auto_map = _config_file(name_or_path, filename).get("auto_map")
        if auto_map:
            classes = sorted(auto_map) if isinstance(auto_map, dict) else auto_map
            raise UnsafeCheckpoint(
                f"{name_or_path}: {filename} asks for custom code (auto_map: {classes}); refusing "
                "while RAFTFLOW_TRUST_REMOTE_CODE is off. Turn it on only for a source you trust."
            )


def _config_file(name_or_path: str, filename: str) -> dict[str, Any]:
    """A checkpoint's JSON config file as a dict; {} when it cannot be read (from_pretrained then
    fails with its own message, or the file is simply absent)."""
    path = Path(name_or_path)
    try:
        if path.is_dir():
            file = path / filename
            return json.loads(file.read_text()) if file.is_file() else {}
        if filename == "config.json":
            from transformers import PretrainedConfig

            return PretrainedConfig.get_config_dict(name_or_path)[0]
        from transformers.models.auto.tokenization_auto import get_tokenizer_config

        return get_tokenizer_config(name_or_path)
    except Exception:  # unreadable or unreachable: nothing here can ask for code to run
        return {}


def resolve_device(preference: str = "auto") -> torch.device:
    """CUDA when asked for or available under ``auto``; CPU otherwise."""
    import torch

    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it (halves memory, same range as fp32); fp32 on CPU, where bf16
    matmuls are slower than fp32 on most CPUs."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def set_torch_threads(threads: int | None) -> None:
    """Cap intra-op threads: several torch processes on a 2-core box otherwise slow each other 10x."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def load_tokenizer(
    name_or_path: str, padding_side: PaddingSide = "right", trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """Tokenizer with a pad token. Generation wants left padding (new tokens follow the prompt
    directly); training and classification want right padding."""
    from transformers import AutoTokenizer

    check_remote_code(name_or_path, trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        # Causal LMs (GPT-2, LLaMA, SmolLM2) ship without a pad token; EOS is the usual stand-in. Labels
        # must then be masked with the attention mask, never by comparing with pad_token_id.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name_or_path: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """A causal LM, or a LoRA adapter directory merged into its base (so a LoRA run's unmerged
    checkpoints load anywhere a full one does)."""
    from transformers import AutoModelForCausalLM

    adapter = lora_adapter_base(name_or_path)
    if adapter is not None:
        from peft import PeftModel

        base = load_causal_lm(adapter, device, dtype, trust_remote_code)
        merged = PeftModel.from_pretrained(base, name_or_path).merge_and_unload().eval()
        apply_adapter_records(name_or_path, merged.config)
        return merged
    check_weights_format(name_or_path)
    check_remote_code(name_or_path, trust_remote_code)
    device = _as_device(device)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path,
        dtype=dtype or default_dtype(device),
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    return model.to(device).eval()


def lora_adapter_base(path: str) -> str | None:
    """The base model a PEFT LoRA adapter directory names, or None when ``path`` is not one."""
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config} names no base_model_name_or_path: the adapter cannot be loaded alone")
    return str(base)


ADAPTER_RECORDED_KEYS = ("pad_token_id", CONFIG_KEY, MAX_LENGTH_KEY)
"""What a training job records in the config it saves (the pad id a classifier scores by, the prompt
format, the reward model's token limit), which an adapter merged on load must carry too."""


def apply_adapter_records(adapter_dir: str, config: Any) -> None:
    """Set on ``config`` (a model merged from the adapter in ``adapter_dir``) what the job recorded in
    the config.json it saved beside the adapter: merged on load, the model otherwise has only its base's
    config, and would be prompted, or score, in another format than it was trained in."""
    path = Path(adapter_dir) / "config.json"
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    for key in ADAPTER_RECORDED_KEYS:
        if saved.get(key) is not None:
            setattr(config, key, saved[key])


def load_reward_model(
    name_or_path: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
    pad_token_id: int | None = None,
) -> PreTrainedModel:
    """A sequence classifier with exactly one output (the scalar reward), or a reward-model job's
    LoRA adapter (``lora.merge`` off) merged into its base, its score head included.

    ``config.pad_token_id`` must be set: sequence classifiers pick the last non-pad token to score,
    and a missing or wrong pad id silently scores the wrong position.
    """
    from transformers import AutoModelForSequenceClassification

    adapter = lora_adapter_base(name_or_path)
    if adapter is not None:
        return _merged_reward_adapter(name_or_path, adapter, device, dtype, trust_remote_code, pad_token_id)
    check_weights_format(name_or_path)
    check_remote_code(name_or_path, trust_remote_code)
    device = _as_device(device)
    model = AutoModelForSequenceClassification.from_pretrained(
        name_or_path,
        dtype=dtype or default_dtype(device),
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    if model.config.num_labels != 1:
        raise ValueError(
            f"{name_or_path} has num_labels={model.config.num_labels}; a reward model needs exactly 1"
        )
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    if model.config.pad_token_id is None:
        raise ValueError(f"{name_or_path}: config.pad_token_id is unset; pass the tokenizer's pad id")
    return model.to(device).eval()


def _merged_reward_adapter(
    adapter_dir: str,
    base_name: str,
    device: torch.device | str,
    dtype: torch.dtype | None,
    trust_remote_code: bool,
    pad_token_id: int | None,
) -> PreTrainedModel:
    """The base as a one-output classifier (its head is whatever the base had, or new: the adapter
    brings the trained head, which peft saves with a SEQ_CLS adapter), the adapter merged in."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as transformers_logging

    check_weights_format(base_name)
    check_remote_code(base_name, trust_remote_code)
    device = _as_device(device)
    # The base's new head is replaced by the adapter's trained one next: transformers' warning that it
    # is "newly initialized" and should be trained would be wrong here.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        base = AutoModelForSequenceClassification.from_pretrained(
            base_name,
            num_labels=1,
            ignore_mismatched_sizes=True,
            dtype=dtype or default_dtype(device),
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
        )
    finally:
        transformers_logging.set_verbosity(verbosity)
    model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    apply_adapter_records(adapter_dir, model.config)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    if model.config.pad_token_id is None:
        raise ValueError(f"{adapter_dir}: config.pad_token_id is unset; pass the tokenizer's pad id")
    return model.to(device).eval()


def checkpoint_version(name_or_path: str) -> str:
    """A short, stable id of a checkpoint's weights: the hash of the safetensors index or file
    listing (name, size, mtime). Cheap: never reads the weights themselves."""
    import hashlib

    path = Path(name_or_path)
    if not path.is_dir():
        return name_or_path  # a hub id names its own version
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.safetensors")):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _as_device(device: torch.device | str) -> torch.device:
    import torch

    return device if isinstance(device, torch.device) else torch.device(device)
