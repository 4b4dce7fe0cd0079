"""``raftflow sample | score | select | pairs``: RAFT's stages as commands on files (LMFlow-RAFT's recipe).

    raftflow sample PROMPTS samples.json --generator-url URL | --model CKPT    K responses per prompt
    raftflow score samples.json scores.json --rewarder-url URL | --model RM | --function mod:fn
    raftflow select scores.json selected.json                                  LMFlow text2text
    raftflow train sft --model CKPT --data selected.json ...                   (or your own trainer)
    raftflow pairs scores.json pairs.jsonl                 best vs worst per prompt, for a reward model

The files are the ones the orchestrator writes per iteration (``iter-NNN/samples.json``,
``scores.json``, ``selected.json``) and the stages are the loop's own functions (raftflow.stages,
raftflow.selection), so a run's stage can be redone by hand and a hand-run stage fed back into a run.
Bad options and unreadable inputs exit with status 2 before anything is written; outputs are written
atomically.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

import numpy as np
from pydantic import ValidationError
from tqdm import tqdm

from raftflow.chunks import GENERATOR_REQUESTS_IN_FLIGHT
from raftflow.conversation import PROMPT_FORMATS
from raftflow.data import DataError, load_prompts, write_preferences_jsonl, write_text2text
from raftflow.pairing import best_worst_pairs
from raftflow.schemas.runs import SamplingOptions
from raftflow.selection import select
from raftflow.stages import (
    read_samples,
    read_scores,
    rewards_of,
    sample_prompts,
    score_samples,
    texts_of,
    write_samples,
    write_scores,
)

EXIT_BAD_INPUT = 2
SAMPLING_FLAGS = (
    ("--k", "k", int),
    ("--top-reward-percentage", "top_reward_percentage", float),
    ("--temperature", "temperature", float),
    ("--top-p", "top_p", float),
    ("--top-k", "top_k", int),
    ("--min-new-tokens", "min_new_tokens", int),
    ("--max-new-tokens", "max_new_tokens", int),
)


def register(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser(
        "sample",
        help="K responses per prompt -> samples.json (from a generator URL or a local model)",
        description="Sample K responses per prompt, the RAFT loop's sample stage on files.",
    )
    sample.add_argument("prompts", help="prompt dataset (any format of docs/data.md)")
    sample.add_argument("out", help="samples file to write (the orchestrator's samples.json shape)")
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--generator-url", help="a raftflow generator or any OpenAI-compatible server")
    source.add_argument("--model", help="a checkpoint directory or hub id, run in this process")
    for flag, field, kind in SAMPLING_FLAGS:
        info = SamplingOptions.model_fields[field]
        sample.add_argument(flag, dest=field, type=kind, help=f"{info.description} (default: {info.default})")
    sample.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="a stop string (repeat for several); default: the prompt format's own (hh: the next turn)",
    )
    sample.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    sample.add_argument(
        "--iteration",
        type=int,
        default=0,
        help="seed the chunks as a run's iteration N does (with the run's seed: redo that stage)",
    )
    sample.add_argument("--prompt-format", choices=PROMPT_FORMATS, default="auto", help="see docs/data.md")
    sample.add_argument("--max-prompts", type=int, help="use only the first N prompts")
    sample.add_argument(
        "--chunk-prompts",
        type=int,
        default=16,
        help="prompts per generation call (LMFlow's inference_batch_size_per_device; default: 16)",
    )
    _add_service_flags(sample)
    sample.set_defaults(handler=_sample)

    score = commands.add_parser(
        "score",
        help="a reward for every sample -> scores.json (rewarder URL, local reward model or function)",
        description="Score every (prompt, response) of a samples file, the loop's score stage on files.",
    )
    score.add_argument("samples", help="samples file (raftflow sample, or a run's iter-NNN/samples.json)")
    score.add_argument("out", help="scores file to write (the orchestrator's scores.json shape)")
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--rewarder-url", help="a raftflow rewarder (it renders pairs in its own format)")
    source.add_argument("--model", help="a reward model (sequence classifier, one output), in this process")
    source.add_argument("--function", help="a rule-based reward 'module:function', in this process")
    score.add_argument(
        "--prompt-format",
        choices=PROMPT_FORMATS,
        default="auto",
        help="how a local reward model sees each pair (auto: the format its training recorded)",
    )
    score.add_argument("--chunk-items", type=int, default=256, help="pairs per scoring call (default: 256)")
    _add_service_flags(score)
    score.set_defaults(handler=_score)

    pick = commands.add_parser(
        "select",
        help="keep the best samples -> LMFlow text2text training file (for raftflow train sft)",
        description="Keep the best sample per prompt (or the global top fraction), the loop's select stage.",
    )
    pick.add_argument("scores", help="scores file (raftflow score, or a run's iter-NNN/scores.json)")
    pick.add_argument("out", help="training file to write (LMFlow text2text: raftflow train sft --data)")
    pick.add_argument("--selection", choices=("local", "global"), default="local")
    pick.add_argument("--global-fraction", type=float, help="share kept under global selection (default 1/K)")
    pick.add_argument("--min-reward", type=float, help="drop a prompt whose best sample scores below this")
    pick.add_argument(
        "--min-margin", type=float, help="drop a prompt whose best sample beats its median by less than this"
    )
    pick.set_defaults(handler=_select)

    pairs = commands.add_parser(
        "pairs",
        help="each prompt's best sample against its worst -> preference pairs (raftflow train reward-model)",
        description="On-policy preference pairs: score the policy's samples with a labeller you trust "
        "(raftflow score), then pair each prompt's best sample against its worst, for a reward model "
        "that ranks the policy's own outputs (docs/stages.md).",
    )
    pairs.add_argument("scores", help="scores file (raftflow score, or a run's iter-NNN/scores.json)")
    pairs.add_argument("out", help="preference pairs to write (JSON Lines of prompt, chosen, rejected)")
    pairs.add_argument(
        "--min-gap",
        type=float,
        default=0.0,
        help="skip a prompt whose best and worst differ by less (near-ties; default: 0, ties skipped)",
    )
    pairs.set_defaults(handler=_pairs)


def _add_service_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-token", default=os.environ.get("RAFTFLOW_API_TOKEN"), help="bearer token of the service"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request (default: 600)")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _bar(desc: str) -> tuple[tqdm, Callable[[int, int], None]]:
    bar = tqdm(desc=desc, unit="sample", total=0, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, update


# -- sample ------------------------------------------------------------------------------------------


def _sample(args: argparse.Namespace) -> int:
    options = {
        field: getattr(args, field) for _, field, _ in SAMPLING_FLAGS if getattr(args, field) is not None
    }
    if args.stop is not None:
        options["stop"] = args.stop
    try:
        sampling = SamplingOptions(**options)
    except ValidationError as exc:
        return _fail(_validation_message(exc))
    if args.chunk_prompts < 1:
        return _fail("--chunk-prompts must be >= 1")
    try:
        prompts = load_prompts(args.prompts)
    except DataError as exc:
        return _fail(str(exc))
    if args.max_prompts is not None:
        prompts = prompts[: args.max_prompts]
    rows = asyncio.run(_sample_rows(args, sampling, prompts))
    write_samples(args.out, rows)
    print(f"{len(rows)} prompts x {sampling.samples_per_prompt} samples -> {args.out}")
    return 0


async def _sample_rows(args: argparse.Namespace, sampling: SamplingOptions, prompts: list[str]):
    # A chunk is one request; a service gets the clients' requests in flight, a model in this process
    # one call at a time (raftflow.chunks).
    in_flight = 1
    if args.generator_url:
        from raftflow.clients.generator import CompletionsClient

        sampler = CompletionsClient(
            args.generator_url,
            api_token=args.api_token,
            timeout=args.timeout,
            prompts_per_request=args.chunk_prompts,
            prompt_format=args.prompt_format,
        )
        close, in_flight = sampler.aclose, GENERATOR_REQUESTS_IN_FLIGHT
    else:
        from raftflow_cli.commands.local_backends import LocalSampler

        sampler = await LocalSampler.start(args.model, args.prompt_format)
        close = sampler.close
    k = sampling.samples_per_prompt
    bar, progress = _bar("sample")
    try:
        return await sample_prompts(
            prompts,
            k,
            sampling.sampling_params(args.seed),
            lambda chunk, params: sampler.sample(chunk, k, params),
            iteration=args.iteration,
            chunk_prompts=args.chunk_prompts,
            concurrency=in_flight,
            progress=progress,
        )
    finally:
        bar.close()
        await close()


# -- score -------------------------------------------------------------------------------------------


def _score(args: argparse.Namespace) -> int:
    if args.chunk_items < 1:
        return _fail("--chunk-items must be >= 1")
    try:
        rows = read_samples(args.samples)
    except (OSError, ValueError) as exc:
        return _fail(f"{args.samples}: {_first_line(exc)}")
    scored = asyncio.run(_score_rows(args, rows))
    write_scores(args.out, scored)
    print(f"{sum(len(r.samples) for r in scored)} samples scored -> {args.out}")
    return 0


async def _score_rows(args: argparse.Namespace, rows):
    # One scoring call at a time, as a run scores (orchestrator.raft_loop.Backends): the rewarder's
    # batches, and so the rewards to the last bit, are then the run's.
    if args.rewarder_url:
        from raftflow.clients.rewarder import RewarderClient

        client = RewarderClient(
            args.rewarder_url,
            api_token=args.api_token,
            timeout=args.timeout,
            items_per_request=args.chunk_items,
        )
        score, close = client.score, client.aclose
    else:
        from raftflow_cli.commands.local_backends import LocalScorer

        scorer = await LocalScorer.start(
            model=args.model, function=args.function, prompt_format=args.prompt_format
        )
        score, close = scorer.score, scorer.close
    bar, progress = _bar("score")
    try:
        return await score_samples(rows, score, chunk_items=args.chunk_items, progress=progress)
    finally:
        bar.close()
        await close()


# -- select ------------------------------------------------------------------------------------------


def _select(args: argparse.Namespace) -> int:
    if args.global_fraction is not None and not 0 < args.global_fraction <= 1:
        return _fail(f"--global-fraction must be in (0, 1], got {args.global_fraction}")
    if args.min_margin is not None and args.min_margin < 0:
        return _fail(f"--min-margin must be >= 0, got {args.min_margin}")
    try:
        rows = read_scores(args.scores)
    except (OSError, ValueError) as exc:
        return _fail(f"{args.scores}: {_first_line(exc)}")
    if not rows:
        return _fail(f"{args.scores}: no scored prompts")
    widths = {len(r.samples) for r in rows}
    if len(widths) != 1:
        return _fail(f"{args.scores}: every prompt needs the same number of samples (found {sorted(widths)})")
    selection = select(
        np.array(rewards_of(rows)),
        texts_of(rows),
        args.selection,
        args.global_fraction,
        min_reward=args.min_reward,
        min_margin=args.min_margin,
    )
    if not selection.kept:
        return _fail("nothing selected: every sample was degenerate or every prompt was filtered out")
    write_text2text(args.out, [(rows[i].prompt, rows[i].samples[j].text) for i, j in selection.kept])
    print(
        f"kept {len(selection.kept)} of {len(rows) * widths.pop()} samples ({selection.discarded_samples} "
        f"degenerate, {selection.filtered_prompts} prompts filtered) -> {args.out}"
    )
    return 0


# -- pairs -------------------------------------------------------------------------------------------


def _pairs(args: argparse.Namespace) -> int:
    if args.min_gap < 0:
        return _fail(f"--min-gap must be >= 0, got {args.min_gap}")
    try:
        rows = read_scores(args.scores)
    except (OSError, ValueError) as exc:
        return _fail(f"{args.scores}: {_first_line(exc)}")
    pairs = best_worst_pairs(
        [row.prompt for row in rows], texts_of(rows), rewards_of(rows), min_gap=args.min_gap
    )
    if not pairs:
        return _fail(
            f"no pairs: no prompt of {args.scores} has two non-blank samples at least "
            f"{args.min_gap} apart (--min-gap)"
        )
    write_preferences_jsonl(args.out, pairs)
    print(f"{len(pairs)} pairs from {len(rows)} prompts ({len(rows) - len(pairs)} skipped) -> {args.out}")
    return 0


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "options"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"--{where.replace('_', '-')}: {message}" if error["loc"] else message)
    return "; ".join(parts)


def _first_line(exc: BaseException) -> str:
    """What was wrong with an input file, in one line: for a record that breaks the schema, where
    (``record 3, samples``) and why."""
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        loc = error["loc"]
        where = ", ".join([f"record {loc[0]}", *(str(p) for p in loc[1:])]) if loc else "file"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {error['msg'].removeprefix('Value error, ')}{more}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
