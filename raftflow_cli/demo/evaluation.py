"""Judge every checkpoint of the demo the same way: the SFT model (iteration 0) and each RAFT iteration's.

Sampling and scoring go through the running services (the generator loads each checkpoint with
``POST /v1/load``; the proxy and gold rewarders score every sample), on the held-out eval prompts with
one fixed seed, so the rows differ only by the checkpoint. Perplexity of the held-out SFT pairs is
computed here, in-process, by loading each checkpoint (tiny models load in well under a second).

Rewards are means over ALL samples of the policy (an unbiased estimate of its expected reward, with
less variance than the first sample alone); best-of-K is the mean over prompts of the best proxy score,
and ``gold_of_best`` the gold reward of that proxy-chosen sample: what RAFT actually trains on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raftflow.atomic import write_json_atomic
from raftflow.clients.generator import CompletionsClient
from raftflow.clients.rewarder import RewarderClient
from raftflow.data import PromptResponse
from raftflow.iteration_stats import distinct_n
from raftflow.schemas.generation import SamplingParams


@dataclass(frozen=True)
class EvalClients:
    generator: CompletionsClient
    proxy: RewarderClient
    gold: RewarderClient


def sample_metrics(
    prompts: Sequence[str],
    texts: list[list[str]],
    tokens: list[list[int]],
    proxy: np.ndarray,
    gold: np.ndarray,
) -> dict[str, float]:
    """Metrics of a P x K table of samples and their two rewards."""
    flat = [t for row in texts for t in row]
    best = np.argmax(proxy, axis=1)
    rows = np.arange(len(prompts))
    return {
        "proxy_reward": float(proxy.mean()),
        "gold_reward": float(gold.mean()),
        "gold_std": float(gold.std()),
        "proxy_std": float(proxy.std()),
        "proxy_best_of_k": float(proxy[rows, best].mean()),
        "gold_of_best": float(gold[rows, best].mean()),
        "gold_best_of_k": float(gold.max(axis=1).mean()),
        "gold_positive_share": float((gold > 0.05).mean()),
        "distinct_1": distinct_n(flat, 1),
        "distinct_2": distinct_n(flat, 2),
        "mean_length": float(np.mean(tokens)),
        "mean_words": float(np.mean([len(t.split()) for t in flat])),
    }


async def score_grid(rewarder: RewarderClient, prompts: Sequence[str], texts: list[list[str]]) -> np.ndarray:
    """The rewards of a P x K table of samples (row i: the samples of prompt i), as a P x K array."""
    flat_prompts = [p for p, row in zip(prompts, texts, strict=True) for _ in row]
    flat_texts = [t for row in texts for t in row]
    width = len(texts[0]) if texts else 0
    return np.array(await rewarder.score(flat_prompts, flat_texts)).reshape(len(prompts), width)


async def evaluate_checkpoint(
    clients: EvalClients,
    checkpoint: str,
    prompts: Sequence[str],
    samples_per_prompt: int,
    params: SamplingParams,
    samples_path: Path,
) -> dict[str, float]:
    """Load ``checkpoint`` into the generator, sample, score with both rewards; the samples and their
    scores are kept in ``samples_path`` (written atomically) for reading by hand."""
    await clients.generator.load_checkpoint(checkpoint)
    rows = await clients.generator.sample(list(prompts), samples_per_prompt, params)
    texts = [[s.text for s in row] for row in rows]
    tokens = [[s.completion_tokens for s in row] for row in rows]
    proxy = await score_grid(clients.proxy, prompts, texts)
    gold = await score_grid(clients.gold, prompts, texts)
    write_json_atomic(
        samples_path,
        [
            {"prompt": p, "samples": row, "proxy": pr.tolist(), "gold": g.tolist()}
            for p, row, pr, g in zip(prompts, texts, proxy, gold, strict=True)
        ],
    )
    return sample_metrics(prompts, texts, tokens, proxy, gold)


def heldout_perplexity(checkpoint: str, pairs: Sequence[PromptResponse], batch_size: int = 32) -> float:
    """exp(mean NLL per response token, EOS included) of the held-out (prompt, response) pairs, the
    tokens laid out as the trainer lays them out (prompt ids + response ids + EOS).

    It shows what RAFT costs: the further the policy moves from the fortunes it was fine-tuned on,
    the higher it gets (the paper reports the same trade-off as perplexity beside reward)."""
    import torch

    from raftflow.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(checkpoint, "right")
    model = load_causal_lm(checkpoint, "cpu", dtype=torch.float32)
    max_len = int(getattr(model.config, "n_positions", 1024))
    total_nll, total_tokens = 0.0, 0
    prompt_ids = tokenizer([p.prompt for p in pairs])["input_ids"]
    response_ids = tokenizer([p.response for p in pairs], add_special_tokens=False)["input_ids"]
    examples = [
        ((pi + ri + [tokenizer.eos_token_id])[:max_len], len(pi))
        for pi, ri in zip(prompt_ids, response_ids, strict=True)
    ]
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (seq, prompt_len) in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
                labels[row, prompt_len : len(seq)] = torch.tensor(seq[prompt_len:])
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            targets = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total_nll += float(nll)
            total_tokens += int((targets != -100).sum())
    return math.exp(total_nll / max(1, total_tokens))


def perplexities(
    checkpoints: Sequence[str], pairs: Sequence[PromptResponse], on_done: Callable[[], None] | None = None
) -> list[float]:
    values = []
    for checkpoint in checkpoints:
        values.append(heldout_perplexity(checkpoint, pairs))
        if on_done is not None:
            on_done()
    return values
