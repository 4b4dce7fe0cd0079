"""VADER sentiment as a reward: the demo's GOLD reward.

VADER is a lexicon-and-rules scorer (Hutto & Gilbert 2014): no weights, deterministic, and fast enough
to score every sample. That makes it a ground truth the tiny learned reward model can be measured
against: when the proxy rises and VADER stays flat, the policy is hacking the proxy.
"""

from __future__ import annotations

import functools

try:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
except ImportError as missing:  # an optional extra: the rewarder then exits naming it
    raise ImportError(
        "raftflow.rewards.sentiment needs vaderSentiment: pip install 'raftflow[demo]'"
    ) from missing

from raftflow.schemas.reward import RewardItem


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    """One analyzer per process: building it parses the lexicon (~10 ms)."""
    return SentimentIntensityAnalyzer()


def vader_compound(text: str) -> float:
    """VADER's compound score in [-1, 1]: above 0.05 reads positive, below -0.05 negative."""
    return float(_analyzer().polarity_scores(text)["compound"])


def vader_positivity(items: list[RewardItem]) -> list[float]:
    """The compound score of the response alone (the prompt's sentiment is not the policy's doing);
    of the whole text when the caller sent formatted ``texts`` without a split."""
    return [vader_compound(item.response if item.response is not None else item.text) for item in items]
