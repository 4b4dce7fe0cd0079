"""Model plumbing both trainers share: the context window, LoRA adapters and saving a checkpoint
that the generator and rewarder load with plain ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase, Trainer

from raftflow.conversation import CONFIG_KEY, ResolvedFormat, recorded_format, resolve_format
from raftflow.data import DataError
from raftflow.modeling import apply_adapter_records, load_causal_lm, lora_adapter_base
from raftflow.schemas.jobs import LoraOptions, TrainingJob


def context_window(model: PreTrainedModel) -> int | None:
    """Positions the model can attend over, when its config says (GPT-2: n_positions)."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def effective_max_length(requested: int, model: PreTrainedModel) -> int:
    """Truncate to the smaller of the job's max_length and the context window: a longer sequence
    would index past the position embeddings."""
    window = context_window(model)
    return min(requested, window) if window else requested


def load_policy(
    path: str, lora: LoraOptions | None, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, bool]:
    """The causal LM a job trains, in fp32, and whether it continues an existing adapter.

    A LoRA adapter directory with ``lora.merge`` off is trained further as the same adapter on its
    base, so every iteration of a LoRA run saves an adapter of the one base model: what a vLLM
    generator serves as adapters (never merged). Otherwise an adapter is merged into its base on load
    and a job with ``lora`` trains fresh adapters on that (the merged run's way)."""
    import torch

    base = lora_adapter_base(path)
    if base is not None and lora is not None and not lora.merge:
        from peft import PeftModel

        model = load_causal_lm(base, dtype=torch.float32, trust_remote_code=trust_remote_code)
        # The base's config knows nothing of the adapter's training: without its records (the prompt
        # format above all), 'auto' would continue an adapter trained in raw as hh, which the generator
        # samples in raw (it merges the adapter with its records), and the new adapter would record hh.
        apply_adapter_records(path, model.config)
        return PeftModel.from_pretrained(model, path, is_trainable=True), True
    return load_causal_lm(path, dtype=torch.float32, trust_remote_code=trust_remote_code), False


def apply_lora(
    model: PreTrainedModel,
    options: LoraOptions | None,
    task_type: Literal["CAUSAL_LM", "SEQ_CLS"],
    gradient_checkpointing: bool = False,
) -> PreTrainedModel:
    """Wrap ``model`` with trainable adapters (peft); unchanged when ``options`` is None. For SEQ_CLS
    peft also trains the new score head in full, as it must."""
    if options is None:
        return model
    from peft import LoraConfig, get_peft_model

    if gradient_checkpointing:
        # Frozen embeddings produce no grad for checkpointed blocks to propagate from otherwise.
        model.enable_input_require_grads()
    config = LoraConfig(
        task_type=task_type,
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
    )
    return get_peft_model(model, config)


def resolve_job_format(
    job: TrainingJob, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel
) -> ResolvedFormat:
    """The job's prompt format for this checkpoint ('auto' as the generator and rewarder resolve it);
    a chat_template job on a tokenizer without one fails before training, naming the field."""
    try:
        return resolve_format(job.prompt_format, tokenizer, recorded_format(model.config))
    except ValueError as exc:
        raise DataError(f"prompt_format: {exc}") from exc


def saved_config(model: PreTrainedModel) -> PretrainedConfig:
    """The config that ends up in config.json: the base model's under a peft wrapper (merged or not),
    so a key set on it is saved however the adapters are."""
    return model.get_base_model().config if hasattr(model, "get_base_model") else model.config


def save_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    lora: LoraOptions | None,
    prompt_format: ResolvedFormat | None = None,
) -> None:
    """safetensors weights, config and tokenizer in ``out_dir``. LoRA adapters are merged unless the
    job asked to keep them separate, so consumers need no peft. The prompt format the job trained
    with is recorded in config.json, where 'auto' finds it in every service (beside an unmerged
    adapter too: :func:`raftflow.modeling.apply_adapter_records` reads it when merging on load)."""
    if lora is not None and lora.merge:
        model = model.merge_and_unload()
    if prompt_format is not None:
        setattr(saved_config(model), CONFIG_KEY, prompt_format)
    model.save_pretrained(out_dir, safe_serialization=True)
    if lora is not None and not lora.merge:
        # peft saves the adapter alone; the config beside it keeps what the job recorded (prompt
        # format, pad id, a reward model's token limit), which loaders apply when they merge it.
        saved_config(model).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def save_trained(
    trainer: Trainer,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    lora: LoraOptions | None,
    prompt_format: ResolvedFormat | None = None,
) -> None:
    """Save what ``trainer`` trained, once, however many processes trained it.

    One process: :func:`save_checkpoint` as always. Several: only the main process writes; under
    FSDP or ZeRO-3 every rank first takes part in gathering the full state dict (a collective call),
    while under DDP and ZeRO-2 each rank already holds the whole model. The other ranks wait at a
    barrier, so none exits (and the launcher reports success) before the files are complete."""
    accelerator = trainer.accelerator
    if accelerator.num_processes == 1:
        save_checkpoint(trainer.model, tokenizer, out_dir, lora, prompt_format)
        return
    sharded = trainer.is_fsdp_enabled or (
        trainer.is_deepspeed_enabled and accelerator.state.deepspeed_plugin.zero_stage == 3
    )
    state_dict = accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(trainer.model)
        if state_dict is None:
            save_checkpoint(model, tokenizer, out_dir, lora, prompt_format)
        else:  # LoRA never gets here (launcher.check_supported)
            if prompt_format is not None:
                setattr(model.config, CONFIG_KEY, prompt_format)
            model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
            tokenizer.save_pretrained(out_dir)
    accelerator.wait_for_everyone()
