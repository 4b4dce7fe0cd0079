"""The samples browser's data, from an iteration's files: the kept sample under each selection rule
(with the KL-penalised ranking too), the reason a sample was excluded, the text filter and paging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.sample_views import SamplesNotReady, eval_history, iteration_samples
from raftflow.schemas.runs import RunRequest


def write_iteration(directory: Path, rewards: list[list[float]], texts: list[list[str]], kl=None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "prompt": f"prompt {i}",
            "samples": [{"text": t, "finish_reason": "stop", "completion_tokens": 3} for t in row],
        }
        for i, row in enumerate(texts)
    ]
    (directory / "samples.json").write_text(json.dumps(rows))
    (directory / "scores.json").write_text(
        json.dumps([{**r, "rewards": w} for r, w in zip(rows, rewards, strict=True)])
    )
    if kl is not None:
        (directory / "sample_kl.json").write_text(json.dumps(kl))


def request(**fields) -> RunRequest:
    return RunRequest(policy="/m", prompts="/p.json", k=3, **fields)


def kept_texts(view) -> list[str]:
    return [s.text for p in view.prompts for s in p.samples if s.kept]


def test_the_best_non_degenerate_sample_is_kept_and_the_degenerate_one_says_why(tmp_path: Path) -> None:
    texts = [
        ["a fine answer", "!", "another answer"],
        ["ok then", "sure thing", "word word word word word word"],
    ]
    write_iteration(tmp_path, [[0.2, 9.0, 0.5], [0.1, 0.3, 0.2]], texts)
    view = iteration_samples(tmp_path, 0, request(), "", 0, 50)
    assert kept_texts(view) == ["another answer", "sure thing"]  # "!" scored 9.0 but is degenerate
    first = view.prompts[0].samples
    assert first[1].degenerate is not None and "short" in first[1].degenerate
    assert first[0].degenerate is None and first[1].reward == 9.0


def test_kl_penalised_ranking_keeps_what_the_loop_kept(tmp_path: Path) -> None:
    texts = [["first answer", "second answer", "third answer"]]
    write_iteration(tmp_path, [[1.0, 0.9, 0.1]], texts, kl=[[5.0, 0.0, 0.0]])
    assert kept_texts(iteration_samples(tmp_path, 0, request(kl_coef=0.1), "", 0, 50)) == ["second answer"]
    assert kept_texts(iteration_samples(tmp_path, 0, request(), "", 0, 50)) == ["first answer"]
    assert iteration_samples(tmp_path, 0, request(kl_coef=0.1), "", 0, 50).prompts[0].samples[0].kl == 5.0


def test_filter_and_paging(tmp_path: Path) -> None:
    texts = [[f"answer {i} a", f"answer {i} b", f"answer {i} c"] for i in range(12)]
    write_iteration(tmp_path, [[0.0, 1.0, 0.5]] * 12, texts)
    view = iteration_samples(tmp_path, 0, request(), "PROMPT 1", 0, 50)
    assert [p.prompt for p in view.prompts] == ["prompt 1", "prompt 10", "prompt 11"]
    page = iteration_samples(tmp_path, 0, request(), "", 10, 5)
    assert (page.total_prompts, page.matching_prompts, [p.index for p in page.prompts]) == (12, 12, [10, 11])


def test_an_unscored_iteration_is_not_ready(tmp_path: Path) -> None:
    with pytest.raises(SamplesNotReady, match="iteration 3 has no scored samples"):
        iteration_samples(tmp_path / "iter-003", 3, request(), "", 0, 50)


def test_eval_history_lines_up_each_prompt_across_iterations(tmp_path: Path) -> None:
    for index, reward in ((0, 0.1), (1, 0.4)):
        directory = tmp_path / f"iter-{index:03d}"
        directory.mkdir()
        rows = [{"prompt": "q", "response": f"r{index}", "reward": reward, "gold": None}]
        (directory / "eval_samples.json").write_text(json.dumps(rows))
    history = eval_history(
        [(0, tmp_path / "iter-000"), (1, tmp_path / "iter-001"), (2, tmp_path / "iter-002")]
    )
    assert [(h.prompt, [(r.iteration, r.response, r.reward) for r in h.responses]) for h in history] == [
        ("q", [(0, "r0", 0.1), (1, "r1", 0.4)])
    ]
