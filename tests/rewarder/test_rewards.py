"""The shipped rule-based rewards, called directly with the protocol's items."""

from __future__ import annotations

import pytest

from raftflow.rewards.format import well_formed
from raftflow.rewards.sentiment import vader_positivity
from raftflow.schemas.reward import RewardItem


def item(response: str | None, text: str = "unused", prompt: str | None = "prompt") -> RewardItem:
    return RewardItem(text=text, prompt=prompt if response is not None else None, response=response)


def test_vader_positivity_orders_sentiment_and_stays_in_range():
    scores = vader_positivity(
        [item("I love this, it is wonderful!"), item("The box is brown."), item("Awful, sad.")]
    )
    assert scores[0] > 0.5 and abs(scores[1]) < 0.05 and scores[2] < -0.5
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_vader_positivity_reads_the_response_not_the_prompt():
    positive_prompt = RewardItem(text="x", prompt="Wonderful, happy, great!", response="It is a box.")
    assert vader_positivity([positive_prompt]) == pytest.approx([0.0])
    assert vader_positivity([item(None, text="Great!")])[0] > 0.5  # no split: the whole text


def test_well_formed_flags_degenerate_responses():
    responses = ["A proper answer.", "", "x", "love " * 10]
    assert well_formed([item(r) for r in responses]) == [1.0, 0.0, 0.0, 0.0]
