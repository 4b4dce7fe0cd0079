"""A reward tokenizer with a chat template: ``inputs`` are rendered through it (format ``auto``), the
scores equal a direct forward over the rendered text, and truncation still cuts the prompt's start."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftflow.conversation import render_pair
from tests.rewarder.conftest import (
    TOLERANCE,
    DirectModel,
    Rewarder,
    assert_close,
    expected_truncation,
    fortunes,
    running_rewarder,
)

MAX_LENGTH = 64
# Trims content, like many real templates: the prompt span must be found, not assumed.
TEMPLATE = (
    "{{ '<|endoftext|>' }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] | trim }}\n{% endfor %}"
)


@pytest.fixture(scope="module")
def chat_model(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny reward model whose tokenizer carries a chat template."""
    from raftflow.modeling import load_tokenizer

    target = tmp_path_factory.mktemp("chat") / "reward"
    shutil.copytree(tiny_models["reward"], target)
    tokenizer = load_tokenizer(str(target))
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def direct(chat_model: Path) -> DirectModel:
    return DirectModel(chat_model)


@pytest.fixture(scope="module")
def rewarder(chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rewarder]:
    with running_rewarder(
        tmp_path_factory.mktemp("rewarder-chat"), "--model", str(chat_model), "--max-length", str(MAX_LENGTH)
    ) as server:
        yield server


def test_auto_format_picks_the_chat_template(rewarder: Rewarder):
    assert rewarder.get("/info").json()["format"] == "chat_template"


def test_pairs_are_rendered_with_the_template(rewarder: Rewarder, direct: DirectModel):
    pairs = [("  Hello there?  ", "Hi! Nice to meet you."), ("Tell me a joke.", "No.")]
    answer = rewarder.post("/score", {"inputs": [{"prompt": p, "response": r} for p, r in pairs]}).json()
    rendered = [render_pair(p, r, "chat_template", direct.tokenizer).text for p, r in pairs]
    assert rendered[0] == "<|endoftext|><|user|>\nHello there?\n<|assistant|>\nHi! Nice to meet you.\n"
    # The template writes its own BOS, so the tokenizer must not add special tokens again.
    assert_close(answer["scores"], [direct.score(text, add_special_tokens=False) for text in rendered])
    hh = direct.score(f"\n\nHuman: {pairs[0][0]}\n\nAssistant: {pairs[0][1]}")
    assert abs(answer["scores"][0] - hh) > 1e-4


def test_truncation_cuts_the_prompt_start_inside_the_template(rewarder: Rewarder, direct: DirectModel):
    body = " ".join(fortunes(40, min_chars=150)[:4])
    response = "A kind and helpful answer."
    prompts = [body + " Explain.", "Another opening entirely. " + body + " Explain."]
    answer = rewarder.post(
        "/score", {"inputs": [{"prompt": p, "response": response} for p in prompts]}
    ).json()
    assert answer["truncated"] == [True, True]
    assert abs(answer["scores"][0] - answer["scores"][1]) <= TOLERANCE
    formatted = render_pair(prompts[0], response, "chat_template", direct.tokenizer)
    assert formatted.prompt_span is not None
    kept = expected_truncation(direct.tokenizer, formatted.text, formatted.prompt_span, MAX_LENGTH)
    decoded = direct.tokenizer.decode(kept)
    assert decoded.startswith("<|endoftext|><|user|>\n") and decoded.endswith(f"<|assistant|>\n{response}\n")
    assert abs(answer["scores"][0] - direct.score_ids(kept)) <= TOLERANCE
