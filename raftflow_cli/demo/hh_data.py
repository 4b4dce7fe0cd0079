"""The ``hh`` profile's datasets, from HH-RLHF records, split once by seed.

Records are kept when their dialogue so far and chosen reply are short enough for a CPU run and the
two replies differ. Held-out records give the eval prompts and, with their chosen replies, the pairs
whose perplexity every checkpoint reports; the rest give the SFT pairs (prompt, chosen reply), the
reward model's preference pairs and the RAFT prompts, as ``raftflow data hh-rlhf`` would write them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from raftflow.atomic import write_json_atomic
from raftflow.data import (
    PreferencePair,
    PromptResponse,
    split_dialogue,
    write_preferences_jsonl,
    write_text2text,
)
from raftflow.data.sources import read_source
from raftflow.data.writers import write_text_only
from raftflow_cli.demo.hh_config import HHData

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "hh-rlhf" / "harmless-base-test-part.jsonl.gz"


@dataclass(frozen=True)
class HHDemoData:
    directory: Path
    sft: Path
    reward_pairs: Path
    raft_prompts: Path
    eval_prompts: Path
    heldout: Path
    card: dict


def usable_records(
    source: Path, options: HHData, limit_length: bool = True
) -> list[tuple[PromptResponse, str]]:
    """(prompt + chosen reply, rejected reply) of the records fit for the profile, in file order;
    ``limit_length=False`` keeps long dialogues too (a reward model reads their last tokens)."""
    kept = []
    for row in read_source(source).rows:
        chosen, rejected = row.fields.get("chosen"), row.fields.get("rejected")
        if not isinstance(chosen, str) or not isinstance(rejected, str) or chosen == rejected:
            continue
        try:
            good, bad = split_dialogue(chosen), split_dialogue(rejected)
        except ValueError:
            continue
        if good.prompt != bad.prompt or not good.response.strip() or not bad.response.strip():
            continue
        too_long = (
            len(good.prompt) > options.max_prompt_chars or len(good.response) > options.max_response_chars
        )
        if limit_length and too_long:
            continue
        kept.append((good, bad.response))
    return kept


def build_hh_data(out_dir: str | Path, options: HHData, seed: int, raft_prompts: int) -> HHDemoData:
    source = Path(options.source) if options.source else SAMPLE
    records = usable_records(source, options)
    random.Random(seed).shuffle(records)
    held, rest = records[: options.eval_prompts], records[options.eval_prompts :]
    if len(rest) < max(options.sft_examples, 16):
        raise ValueError(f"{source}: only {len(records)} usable records; the hh profile needs more")
    out = Path(out_dir)
    paths = {
        name: out / file
        for name, file in (
            ("sft", "sft.json"),
            ("reward_pairs", "reward_pairs.jsonl"),
            ("raft_prompts", "raft_prompts.json"),
            ("eval_prompts", "eval_prompts.json"),
            ("heldout", "heldout.json"),
        )
    }
    write_text2text(paths["sft"], [good for good, _ in rest[: options.sft_examples]])
    # The reward model may also learn from the long dialogues (it reads their last tokens): every record
    # whose prompt is not held out, the profile's own records first.
    held_prompts = {good.prompt for good, _ in held}
    fitting = set(records)
    extra = [r for r in usable_records(source, options, limit_length=False) if r not in fitting]
    candidates = rest + [r for r in extra if r[0].prompt not in held_prompts]
    pairs = [
        PreferencePair(good.response, bad, good.prompt) for good, bad in candidates[: options.reward_pairs]
    ]
    write_preferences_jsonl(paths["reward_pairs"], pairs)
    # RAFT prompts: after the SFT ones where the data allows (fresh prompts, as LMFlow takes the next
    # slice each iteration), wrapping into the SFT part only when the sample runs short.
    raft = [good.prompt for good, _ in rest[options.sft_examples :]] or [g.prompt for g, _ in rest]
    write_text_only(paths["raft_prompts"], (raft * (raft_prompts // len(raft) + 1))[:raft_prompts])
    write_text_only(paths["eval_prompts"], [good.prompt for good, _ in held])
    write_text2text(paths["heldout"], [good for good, _ in held])
    card = {
        "source": str(source),
        "usable_records": len(records),
        "sft_examples": min(len(rest), options.sft_examples),
        "reward_pairs": len(pairs),
        "raft_prompts": raft_prompts,
        "distinct_raft_prompts": min(len(raft), raft_prompts),
        "eval_prompts": len(held),
        "seed": seed,
    }
    write_json_atomic(out / "data_card.json", card)
    return HHDemoData(directory=out, card=card, **paths)
