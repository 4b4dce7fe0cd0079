"""Helpers for the rewarder tests: launching real rewarder processes for a module, and scoring texts
with a direct, unbatched forward pass of the same tiny reward model (the reference every served score
is compared with)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from raftflow.processes import ServiceProcess
from tests.processes import start_service

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOLERANCE = 1e-5


@dataclass
class Rewarder:
    process: ServiceProcess
    url: str
    headers: dict[str, str]

    def post(self, path: str, body: object, **kwargs: object) -> httpx.Response:
        kwargs.setdefault("headers", self.headers)
        return httpx.post(self.url + path, json=body, timeout=60.0, **kwargs)

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        """With the token by default: open routes show paths only to a caller holding it."""
        kwargs.setdefault("headers", self.headers)
        return httpx.get(self.url + path, timeout=10.0, **kwargs)

    def scores(self, body: dict) -> list[float]:
        response = self.post("/score", body)
        assert response.status_code == 200, response.text
        return response.json()["scores"]

    def metric(self, name: str, labels: str = "") -> float:
        """A sample's value from /metrics, e.g. ``metric("rewarder_batch_size_count")``."""
        pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
        match = re.search(pattern, self.get("/metrics").text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0


@contextmanager
def running_rewarder(
    log_dir: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None, wait: bool = True
) -> Iterator[Rewarder]:
    """``python -m services.rewarder ARGS`` on a loopback port (a free one by default), stopped on exit.
    ``wait=False`` returns as soon as the process is started (for clients that must wait for it)."""
    process, url = start_service(
        "services.rewarder", *args, log_dir=log_dir, name="rewarder", env=env, port=port, wait=wait
    )
    try:
        token = (env or {}).get("RAFTFLOW_API_TOKEN")
        yield Rewarder(process, url, {"Authorization": f"Bearer {token}"} if token else {})
    finally:
        process.stop()


def assert_close(served: list[float], expected: list[float]) -> None:
    assert len(served) == len(expected)
    worst = max(abs(a - b) for a, b in zip(served, expected, strict=True))
    assert worst <= TOLERANCE, f"max |served - expected| = {worst}"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


class DirectModel:
    """The reward model run the plain Hugging Face way: one text, no padding, no batching."""

    def __init__(self, path: Path):
        from raftflow.modeling import load_reward_model, load_tokenizer

        self.tokenizer = load_tokenizer(str(path))
        self.model = load_reward_model(str(path))

    def score(self, text: str, add_special_tokens: bool = True) -> float:
        """``model(**tokenizer(text))``: every input the tokenizer makes, as a Hugging Face pipeline does."""
        import torch

        inputs = self.tokenizer(text, add_special_tokens=add_special_tokens, return_tensors="pt")
        with torch.inference_mode():
            return float(self.model(**inputs).logits[0, 0])

    def score_ids(self, ids: list[int]) -> float:
        """The same forward over given token ids (a truncated item): zero type ids, a full mask."""
        import torch

        input_ids = torch.tensor([ids])
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if "token_type_ids" in self.tokenizer.model_input_names:
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
        with torch.inference_mode():
            return float(self.model(**inputs).logits[0, 0])

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]


@pytest.fixture(scope="session")
def direct_model(tiny_models: dict[str, Path]) -> DirectModel:
    return DirectModel(tiny_models["reward"])


def expected_truncation(
    tokenizer: PreTrainedTokenizerBase, text: str, prompt_span: tuple[int, int], max_length: int
) -> list[int]:
    """The truncation rule written out plainly: drop the prompt's first tokens until the text fits (the
    prompt alone must be long enough). A token overlapping the prompt's start counts as prompt."""
    enc = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    start, end = prompt_span
    prompt = [i for i, (a, b) in enumerate(offsets) if b > start and a < end and b <= end]
    dropped = set(prompt[: len(ids) - max_length])
    assert len(dropped) == len(ids) - max_length, "the prompt alone must be long enough to cut"
    return [token for i, token in enumerate(ids) if i not in dropped]


def fortunes(count: int, min_chars: int = 20, max_chars: int = 400) -> list[str]:
    """Real English texts of varied length from the fortune corpus (deterministic order)."""
    from raftflow_cli.tiny_models import read_fortunes

    picked = [text for text in read_fortunes() if min_chars <= len(text) <= max_chars]
    step = max(len(picked) // count, 1)
    return picked[::step][:count]
