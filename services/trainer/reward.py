"""The ``reward_model`` job's training: a one-output sequence classifier trained with transformers'
Trainer on the Bradley-Terry loss ``-log sigmoid(r_chosen - r_rejected)``, evaluated by held-out
pairwise accuracy (the share of pairs it ranks the right way round)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForSequenceClassification,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    set_seed,
)

from raftflow.data import PreferencePair
from raftflow.encoding import MAX_LENGTH_KEY
from raftflow.modeling import load_tokenizer
from raftflow.schemas.jobs import RewardModelJob
from services.trainer.config import RewardConfig, close_tracker_runs
from services.trainer.metrics import finite, training_metrics
from services.trainer.reward_data import PairCollator, split_holdout, tokenize_pairs
from services.trainer.runtime import Runtime
from services.trainer.weights import (
    apply_lora,
    effective_max_length,
    resolve_job_format,
    save_trained,
    saved_config,
)


class BradleyTerryTrainer(Trainer):
    """Trainer whose batches hold B chosen rows then B rejected rows (see PairCollator)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The loss is a mean over pairs, not a sum over tokens: let the Trainer divide by the
        # accumulation steps itself.
        self.model_accepts_loss_kwargs = False

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rewards = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        chosen, rejected = rewards.squeeze(-1).float().chunk(2)
        loss = -F.logsigmoid(chosen - rejected).mean()
        if return_outputs:
            return loss, {"rewards_chosen": chosen, "rewards_rejected": rejected}
        return loss

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """Pairs grouped by their longer text when the job asks for it (the Trainer's own grouping reads
        an ``input_ids`` column, which pair features do not have)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.args.group_by_length or dataset is None:
            return super()._get_train_sampler(train_dataset)
        size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return _grouped_pairs(dataset, size, self.args.seed)

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        if not self.args.group_by_length or eval_dataset is None:
            return super()._get_eval_sampler(eval_dataset)
        return _grouped_pairs(eval_dataset, self.args.eval_batch_size, self.args.seed)

    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Predictions are (r_chosen, r_rejected) per pair; the labels are a placeholder the Trainer
        needs before it calls compute_metrics."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        logits = torch.stack([outputs["rewards_chosen"], outputs["rewards_rejected"]], dim=1)
        return loss.detach(), logits, torch.zeros(len(logits), device=logits.device)


def _grouped_pairs(dataset: Any, batch_size: int, seed: int) -> Any:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = [max(len(f["chosen_ids"]), len(f["rejected_ids"])) for f in dataset]
    return LengthGroupedSampler(batch_size, lengths=lengths, generator=torch.Generator().manual_seed(seed))


def pairwise_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    rewards = np.asarray(prediction.predictions)
    return {"accuracy": float(np.mean(rewards[:, 0] > rewards[:, 1]))}


def train_reward_model(
    job: RewardModelJob,
    pairs: Sequence[PreferencePair],
    staging: Path,
    runtime: Runtime,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, float]:
    """Train and save the classifier into ``staging``; returns the metrics."""
    config = RewardConfig.from_job(job, str(staging), use_cpu=runtime.use_cpu, bf16=runtime.bf16)
    set_seed(config.seed)  # the score head of a causal-LM starting point is drawn here
    tokenizer = load_tokenizer(job.model, "right", trust_remote_code=runtime.trust_remote_code)
    # A causal LM or a classifier may start the run; num_labels=1 gives either a scalar head (a new
    # one if the checkpoint had none or another size).
    model = AutoModelForSequenceClassification.from_pretrained(
        job.model,
        num_labels=1,
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
        use_safetensors=True,
        trust_remote_code=runtime.trust_remote_code,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    max_length = effective_max_length(config.max_length, model)
    prompt_format = resolve_job_format(job, tokenizer, model)
    train_pairs, eval_pairs = split_holdout(pairs, config.eval_fraction, config.seed)
    model = apply_lora(model, config.lora, "SEQ_CLS", config.gradient_checkpointing)

    trainer = BradleyTerryTrainer(
        model=model,
        args=config.training_arguments(),
        train_dataset=tokenize_pairs(train_pairs, tokenizer, max_length, prompt_format),
        eval_dataset=tokenize_pairs(eval_pairs, tokenizer, max_length, prompt_format) if eval_pairs else None,
        data_collator=PairCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        compute_metrics=pairwise_accuracy,
        callbacks=list(callbacks),
    )
    output = trainer.train()
    metrics = training_metrics(trainer, output, examples=len(train_pairs), dropped=0)
    if eval_pairs:
        evaluation = trainer.evaluate()
        metrics |= finite(
            {
                "eval_accuracy": evaluation.get("eval_accuracy"),
                "eval_loss": evaluation.get("eval_loss"),
                "eval_pairs": len(eval_pairs),
            }
        )
    # Recorded beside the prompt format: the rewarder truncates to what the head learned to read.
    setattr(saved_config(trainer.accelerator.unwrap_model(trainer.model)), MAX_LENGTH_KEY, max_length)
    save_trained(trainer, tokenizer, staging, config.lora, prompt_format)
    close_tracker_runs(config.report_to)
    return metrics
