"""The ``sft`` job's training: a causal LM fine-tuned with transformers' Trainer on prompt + response
(+ EOS), the loss on the response by default. Used for the SFT stage and every RAFT fine-tuning step."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from transformers import Trainer, TrainerCallback, set_seed

from raftflow.data import DataError, PromptResponse
from raftflow.modeling import load_tokenizer
from raftflow.schemas.jobs import SFTJob
from services.trainer.config import SFTConfig, close_tracker_runs
from services.trainer.metrics import training_metrics
from services.trainer.runtime import Runtime
from services.trainer.sft_data import SFTCollator, tokenize_sft
from services.trainer.weights import (
    apply_lora,
    effective_max_length,
    load_policy,
    resolve_job_format,
    save_trained,
)

log = logging.getLogger(__name__)


def train_sft(
    job: SFTJob,
    examples: Sequence[PromptResponse],
    staging: Path,
    runtime: Runtime,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, float]:
    """Train and save the model into ``staging``; returns the metrics."""
    config = SFTConfig.from_job(job, str(staging), use_cpu=runtime.use_cpu, bf16=runtime.bf16)
    set_seed(config.seed)  # before any new weights (LoRA) are drawn
    tokenizer = load_tokenizer(job.model, "right", trust_remote_code=runtime.trust_remote_code)
    # fp32 master weights; bf16 (on GPUs) is applied as mixed precision by the Trainer.
    model, continuing = load_policy(job.model, config.lora, runtime.trust_remote_code)
    max_length = effective_max_length(config.max_length, model)
    prompt_format = resolve_job_format(job, tokenizer, model)
    features, dropped = tokenize_sft(examples, tokenizer, max_length, config.loss_on, prompt_format)
    if dropped:
        log.warning(
            "job %s: %d examples have no response token within %d tokens", job.job_id, dropped, max_length
        )
    if not features:
        raise DataError(f"{job.data}: no example has a response token within max_length={max_length}")
    if not continuing:
        model = apply_lora(model, config.lora, "CAUSAL_LM", config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.enable_input_require_grads()  # as apply_lora does: frozen embeddings give no grad

    trainer = Trainer(
        model=model,
        args=config.training_arguments(),
        train_dataset=features,
        data_collator=SFTCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    output = trainer.train()
    save_trained(trainer, tokenizer, staging, config.lora, prompt_format)
    close_tracker_runs(config.report_to)
    return training_metrics(trainer, output, examples=len(features), dropped=dropped)
