"""The batch planner: as few generate calls as the token budget allows, every sample exactly once."""

from __future__ import annotations

import pytest

from services.generator.engine.batching import Batch, plan_batches


def covered(batches: list[Batch]) -> list[tuple[int, int]]:
    return sorted(
        (p, batch.first_row + r) for batch in batches for p in batch.prompts for r in range(batch.rows)
    )


def test_everything_in_one_call_when_it_fits() -> None:
    batches = plan_batches([3, 7, 5], rows_per_prompt=4, max_new_tokens=10, token_budget=1000)
    assert batches == [Batch(prompts=(1, 2, 0), rows=4)]  # longest prompt first: least padding


def test_budget_splits_prompts_into_calls_that_fit() -> None:
    lengths = [10] * 10
    batches = plan_batches(lengths, rows_per_prompt=4, max_new_tokens=10, token_budget=400)
    # 4 rows x 20 tokens = 80 per prompt: 5 prompts per call.
    assert [len(b.prompts) for b in batches] == [5, 5]
    assert all(b.size * 20 <= 400 for b in batches)
    assert covered(batches) == [(p, r) for p in range(10) for r in range(4)]


def test_padded_width_counts_against_the_budget() -> None:
    # One long prompt pads the short ones to its width: 3 prompts x 2 rows x (30 + 10) = 240 > 200.
    batches = plan_batches([30, 2, 2], rows_per_prompt=2, max_new_tokens=10, token_budget=200)
    assert [b.prompts for b in batches] == [(0, 1), (2,)]


def test_a_prompt_too_big_for_one_call_is_split_over_its_rows() -> None:
    batches = plan_batches([2, 90], rows_per_prompt=8, max_new_tokens=10, token_budget=300)
    assert batches[:3] == [Batch((1,), 3, 0), Batch((1,), 3, 3), Batch((1,), 2, 6)]
    assert batches[3] == Batch((0,), 8, 0)
    assert covered(batches) == [(p, r) for p in range(2) for r in range(8)]


def test_at_least_one_row_per_call_even_over_budget() -> None:
    batches = plan_batches([50], rows_per_prompt=3, max_new_tokens=50, token_budget=10)
    assert batches == [Batch((0,), 1, 0), Batch((0,), 1, 1), Batch((0,), 1, 2)]


@pytest.mark.parametrize("budget", [1, 64, 500, 5000])
def test_every_sample_planned_exactly_once(budget: int) -> None:
    lengths = [(i * 7) % 23 + 1 for i in range(17)]
    batches = plan_batches(lengths, rows_per_prompt=5, max_new_tokens=8, token_budget=budget)
    assert covered(batches) == [(p, r) for p in range(17) for r in range(5)]
