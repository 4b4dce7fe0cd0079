"""Fixtures for the trainer tests: toy data the tiny models can learn in seconds, a real Celery worker
subprocess on the test Redis, and an independent measure of a causal LM's loss."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raftflow.clients.trainer import TrainerClient
from raftflow.data import PreferencePair, PromptResponse, write_preferences_jsonl, write_text2text
from raftflow.processes import ServiceProcess
from tests.processes import start_process

SUBJECTS = [
    "The cat",
    "My friend",
    "The weather",
    "This movie",
    "Our trip",
    "The food",
    "That song",
    "The book",
]
GOOD = ["good", "great", "wonderful", "happy", "excellent", "lovely", "superb", "fine"]
BAD = ["bad", "awful", "terrible", "sad", "horrible", "nasty", "dreadful", "poor"]


def sft_examples(count: int = 32) -> list[PromptResponse]:
    """Short question/answer pairs; the answers repeat a pattern the tiny model picks up in a few steps."""
    return [
        PromptResponse(f"Question {i}: tell me about {s.lower()}.\nAnswer:", f" {s} is number {i % 5}.")
        for i, s in enumerate((SUBJECTS * (count // len(SUBJECTS) + 1))[:count])
    ]


def preference_pairs(count: int, seed: int) -> list[PreferencePair]:
    """Separable by sentiment: chosen texts use a positive word, rejected texts a negative one."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        subject, tail = rng.choice(SUBJECTS), rng.choice(["today.", "again!", "as usual."])
        pairs.append(
            PreferencePair(
                f"{subject} was {rng.choice(GOOD)} {tail}", f"{subject} was {rng.choice(BAD)} {tail}"
            )
        )
    return pairs


@pytest.fixture
def sft_data(tmp_path: Path) -> Path:
    path = tmp_path / "sft.json"
    write_text2text(path, sft_examples())
    return path


@pytest.fixture
def preference_data(tmp_path: Path) -> Path:
    path = tmp_path / "prefs.jsonl"
    write_preferences_jsonl(path, preference_pairs(64, seed=1))
    return path


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """``start_worker(**env) -> ServiceProcess``: ``python -m services.trainer`` on the test Redis.
    Every worker started is stopped (SIGTERM, then SIGKILL) when the test ends."""
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        index = len(started)
        process = start_process(
            "services.trainer",
            f"--hostname=trainer{index}@%h",
            log_dir=tmp_path,
            name=f"worker-{index}",
            env={"REDIS_URL": redis_url, "TRAINER_PROGRESS_INTERVAL": "0.1", **env},
        )
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop(timeout=5)


@pytest.fixture
def trainer_client(redis_url: str) -> Iterator[TrainerClient]:
    with TrainerClient(redis_url, retry_seconds=10) as client:
        yield client


def response_loss(model_dir: str | Path, examples: list[PromptResponse]) -> float:
    """Mean next-token loss on the response tokens of each prompt + response text, by a plain forward
    pass (none of the trainer's code): the quantity SFT minimises."""
    import torch

    from raftflow.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(str(model_dir))
    model = load_causal_lm(str(model_dir))
    losses = []
    with torch.no_grad():
        for example in examples:
            ids = tokenizer(example.prompt + example.response, return_tensors="pt")["input_ids"]
            labels = ids.clone()
            labels[:, : len(tokenizer(example.prompt)["input_ids"])] = -100
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return sum(losses) / len(losses)


def pair_rewards(model_dir: str | Path, pairs: list[PreferencePair]) -> list[float]:
    """The saved reward model's scores of every chosen text, then every rejected one, loaded as the
    rewarder loads it."""
    import torch

    from raftflow.modeling import load_reward_model, load_tokenizer

    tokenizer = load_tokenizer(str(model_dir))
    model = load_reward_model(str(model_dir))
    texts = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    with torch.no_grad():
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        return model(**batch).logits.squeeze(-1).tolist()


def pairwise_accuracy(model_dir: str | Path, pairs: list[PreferencePair]) -> float:
    """Share of pairs the saved reward model scores chosen > rejected."""
    rewards = pair_rewards(model_dir, pairs)
    chosen, rejected = rewards[: len(pairs)], rewards[len(pairs) :]
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(pairs)
