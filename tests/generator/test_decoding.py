"""The engine's decoding in process: shared-prefill batches give exactly what the textbook
``model.generate(num_return_sequences=n)`` gives, and rows are cut at EOS and stop strings correctly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from services.generator.engine.decoding import run_batch
from services.generator.engine.loaded_model import LoadedModel, load_model
from services.generator.engine.types import GenerationJob

PROMPTS = ["The quick brown fox", "A", "Life is what happens when you are busy"]


@pytest.fixture(scope="module")
def loaded(tiny_models: dict[str, Path]) -> LoadedModel:
    torch.set_num_threads(1)
    return load_model(str(tiny_models["policy"]), torch.device("cpu"))


def test_shared_prefill_matches_plain_generate(loaded: LoadedModel) -> None:
    assert loaded.shared_prefill
    n, new = 4, 12
    job = GenerationJob(prompts=PROMPTS, n=n, max_new_tokens=new, top_k=0)
    ids = loaded.encode(PROMPTS)
    shared = run_batch(loaded, ids, n, job, new, seed=3)
    unshared = run_batch(replace(loaded, shared_prefill=False), ids, n, job, new, seed=3)

    torch.manual_seed(3)
    # No token_type_ids: the tiny tokenizer emits them, but GPT-2 would add an embedding for them.
    encoded = loaded.tokenizer(PROMPTS, return_tensors="pt", padding=True, return_token_type_ids=False)
    with torch.inference_mode():
        out = loaded.model.generate(
            **encoded, do_sample=True, top_k=0, max_new_tokens=new, num_return_sequences=n, pad_token_id=0
        )
    textbook = loaded.tokenizer.batch_decode(
        out[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
    )

    shared_texts = [sample.text for group in shared for sample in group]
    assert shared_texts == [sample.text for group in unshared for sample in group]
    assert shared_texts == textbook
    assert [len(group) for group in shared] == [n] * len(PROMPTS)
    assert len(set(shared_texts[:n])) > 1


def test_rows_end_at_eos_or_stop_and_count_their_tokens(loaded: LoadedModel) -> None:
    job = GenerationJob(prompts=PROMPTS, n=3, max_new_tokens=30, top_k=0, stop=["e"], logprobs=True)
    groups = run_batch(loaded, loaded.encode(PROMPTS), 3, job, 30, seed=1)
    for sample in (s for group in groups for s in group):
        assert "e" not in sample.text
        assert sample.completion_tokens == len(sample.token_ids) == len(sample.logprobs or [])
        if sample.finish_reason == "length":
            assert sample.completion_tokens == 30
        elif sample.finish_reason == "eos_token":
            assert sample.token_ids[-1] in loaded.eos_token_ids
        else:
            assert sample.stop == "e" and "e" in loaded.tokenizer.decode(sample.token_ids)
    assert any(s.finish_reason == "stop_sequence" for group in groups for s in group)


def test_samples_carry_every_sampled_id_and_end_in_no_half_character(loaded: LoadedModel) -> None:
    """A length cut inside a multi-byte character (byte-level BPE spells one over several tokens) used to
    leave U+FFFD at the end of the text, which was then scored and trained on. The ids keep every
    sampled token, logprobs asked or not: they are what the sample's log-probability is of."""
    job = GenerationJob(prompts=PROMPTS, n=8, max_new_tokens=8, top_k=0, stop=[])
    samples = [s for group in run_batch(loaded, loaded.encode(PROMPTS), 8, job, 8, seed=3) for s in group]
    decoded = [loaded.tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in samples]
    assert sum(text.endswith("\ufffd") for text in decoded) >= 2  # the random tiny policy cuts characters
    for sample, text in zip(samples, decoded, strict=True):
        assert sample.finish_reason == "length" and len(sample.token_ids) == sample.completion_tokens == 8
        assert sample.text == text.rstrip("\ufffd")
