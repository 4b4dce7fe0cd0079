"""One conversation contract across the services, per format: the text the generator conditions on
plus the sampled response is exactly the text the trainer trains on, and exactly the text the rewarder
scores; with a chat template, the same tokens too.

Each service's own code path is called in process (the generator's engine, the SFT tokenizer the
trainer job runs, the rewarder's Scorer), with a tiny policy and reward model that share a tokenizer
carrying a ChatML template, so every format can be checked on both sides.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from raftflow.data import PromptResponse
from raftflow.schemas.reward import PromptResponse as ScoreInput

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPTS = [
    "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke.\n\nAssistant:",
    "A plain question about the sea?",
]


@pytest.fixture(scope="module")
def chat_models(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of the tiny policy and reward model whose shared tokenizer has a ChatML template."""
    from raftflow.modeling import load_tokenizer

    root = tmp_path_factory.mktemp("contract")
    out = {}
    for kind in ("policy", "reward"):
        target = root / kind
        shutil.copytree(tiny_models[kind], target)
        tokenizer = load_tokenizer(str(target))
        tokenizer.chat_template = CHATML
        tokenizer.save_pretrained(target)
        out[kind] = target
    return out


def generate(policy: Path, fmt: str) -> tuple[list[str], list[list[int]], list[str]]:
    """(rendered prompts, their token ids, one sampled response each) from the generator's engine."""
    from services.generator.engine import GenerationJob
    from services.generator.engine.transformers_engine import TransformersEngine
    from services.generator.settings import GeneratorSettings
    from services.generator.telemetry import GeneratorTelemetry

    async def run() -> tuple[list[str], list[list[int]], list[str]]:
        engine = TransformersEngine(GeneratorSettings(model=str(policy)), GeneratorTelemetry())
        await engine.start()
        try:
            job = GenerationJob(prompts=PROMPTS, n=1, max_new_tokens=12, seed=3, prompt_format=fmt)
            output = await engine.generate(job)
            loaded = engine._loaded()
            ids = loaded.encode(output.prompt_texts, loaded.resolve(fmt))
            return output.prompt_texts, ids, [group[0].text for group in output.samples]
        finally:
            await engine.close()

    return asyncio.run(run())


def rewarder_items(reward: Path, fmt: str, responses: list[str]):
    from services.rewarder.scoring import Scorer
    from services.rewarder.settings import RewarderSettings
    from services.rewarder.sources import build_source

    settings = RewarderSettings(model=str(reward), format=fmt)
    source = build_source(settings)
    scorer = Scorer(source, fmt, settings)
    pairs = [ScoreInput(prompt=p, response=r) for p, r in zip(PROMPTS, responses, strict=True)]
    return source, scorer.prepare_pairs(pairs)


@pytest.mark.parametrize("fmt", ["hh", "chat_template", "raw"])
def test_generator_trainer_and_rewarder_see_one_text(chat_models: dict[str, Path], fmt: str) -> None:
    from raftflow.modeling import load_tokenizer
    from services.trainer.sft_data import tokenize_sft

    prompt_texts, prompt_ids, responses = generate(chat_models["policy"], fmt)
    conditioned = [text + response for text, response in zip(prompt_texts, responses, strict=True)]
    if fmt == "hh":
        assert prompt_texts[0] == PROMPTS[0]  # HH turns wrapped exactly once
        assert prompt_texts[1] == f"\n\nHuman: {PROMPTS[1]}\n\nAssistant:"
    elif fmt == "chat_template":
        assert prompt_texts[0].count("<|im_start|>user") == 2 and "Human:" not in prompt_texts[0]
    else:
        assert prompt_texts == PROMPTS

    # The trainer: prompt tokens exactly the generator's, then the response (and EOS).
    tokenizer = load_tokenizer(str(chat_models["policy"]), "right")
    examples = [PromptResponse(p, r) for p, r in zip(PROMPTS, responses, strict=True)]
    features, dropped = tokenize_sft(examples, tokenizer, 4096, "response", fmt)
    assert dropped == 0
    for feature, ids, text in zip(features, prompt_ids, conditioned, strict=True):
        assert feature["input_ids"][: feature["prompt_length"]] == ids
        trained = tokenizer.decode(feature["input_ids"])
        assert trained.removesuffix(tokenizer.eos_token) == _end_turn(text, fmt)

    # The rewarder: the very same text, and (chat template) the same tokens as the trainer's.
    source, prepared = rewarder_items(chat_models["reward"], fmt, responses)
    for item, text, feature in zip(prepared, conditioned, features, strict=True):
        assert item.item.text == _end_turn(text, fmt)
        if fmt == "chat_template":
            # The trainer adds the tokenizer's EOS after the turn when the template's end is not it.
            scored = item.features["input_ids"]
            assert scored == feature["input_ids"][: len(scored)]
            assert feature["input_ids"][len(scored) :] in ([], [tokenizer.eos_token_id])


def _end_turn(text: str, fmt: str) -> str:
    """A chat template ends the assistant turn after the response; the other formats end with it."""
    return text + "<|im_end|>\n" if fmt == "chat_template" else text
