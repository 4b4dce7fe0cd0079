"""The demo pipeline, through the real services and their APIs, as LMFlow-RAFT runs it:

    0. tiny models + the task's datasets (offline, seeded)
    1. SFT of the base policy on the SFT set             -> a trainer job through Redis
    2. the PROXY reward model on gold-labelled pairs     -> a trainer job through Redis
       (corpus pairs, plus the SFT policy's own samples when ``reward_model.policy_prompts`` > 0)
    3. RAFT: ``POST /iterations`` on the orchestrator (proxy reward ranks, gold reward is reported)
    4. every checkpoint judged on held-out prompts (generator + both rewarders), perplexity in-process
    5. the report (table, plot, JSON, verdict)

Services start as soon as what they serve exists, while training runs on the other core: the generator
and the gold rewarder during SFT, the proxy rewarder and the orchestrator after the reward model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm import tqdm

from raftflow.atomic import write_json_atomic
from raftflow.clients.generator import CompletionsClient
from raftflow.clients.rewarder import RewarderClient
from raftflow.clients.trainer import TrainerClient
from raftflow.data import PreferencePair, load_pairs, load_preferences, load_prompts, write_preferences_jsonl
from raftflow.processes import ServiceProcess
from raftflow.schemas.generation import SamplingParams
from raftflow.schemas.jobs import JobProgress, JobResult, RewardModelJob, SFTJob, TrainingConfig
from raftflow.schemas.runs import RunRequest, RunView
from raftflow.seeds import derive_seed
from raftflow_cli.demo.config import DemoConfig
from raftflow_cli.demo.data import DemoData, build_demo_data
from raftflow_cli.demo.evaluation import EvalClients, evaluate_checkpoint, perplexities
from raftflow_cli.demo.policy_pairs import mixed_pairs, policy_preference_pairs
from raftflow_cli.demo.report import DemoReport, build_report, write_report
from raftflow_cli.demo.stack import GOLD_FUNCTION, LocalStack, StackSettings, interrupts_as_exceptions
from raftflow_cli.tiny_models import build_models

Say = Callable[[str], None]
_FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class StageClock:
    """Wall seconds per stage, for the report (and for tuning the profile's budget)."""

    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - start

    @property
    def total(self) -> float:
        return time.monotonic() - self.started


class DemoFailed(RuntimeError):
    """A stage failed; the message names it and where its log is."""


class DemoPipeline:
    def __init__(self, config: DemoConfig, out_dir: str | Path, say: Say = print) -> None:
        self.config = config
        self.out = Path(out_dir).resolve()
        self.say = say
        self.clock = StageClock()

    # -- the whole thing ---------------------------------------------------------------------------

    def run(self) -> DemoReport:
        """Run every stage; the stack is stopped on the way out, whatever happens (Ctrl-C included)."""
        config = self.config
        with interrupts_as_exceptions():
            stack = self.new_stack()
            try:
                with self.clock.stage("setup"):
                    models, data = self.prepare()
                    stack.start_queue()
                    where = "embedded" if stack.redis else "given"
                    self.say(f"redis {stack.redis_url} ({where}); logs in {stack.logs}")
                    # Start what can start now; it loads on the idle core while SFT trains.
                    stack.start_generator(models["policy"])
                    stack.start_rewarder("gold_rewarder", function=GOLD_FUNCTION)
                with TrainerClient(stack.redis_url) as trainer:
                    with self.clock.stage("sft"):
                        job = self.sft_job(models["policy"], data)
                        sft = self.train(trainer, job, "1/3 SFT", stack.processes["trainer"])
                    with self.clock.stage("policy_pairs"):
                        preferences = self.reward_pairs(stack, sft.checkpoint, data)
                    with self.clock.stage("reward_model"):
                        rm_start = sft.checkpoint if config.reward_model.init_from_sft else models["reward"]
                        job = self.reward_job(str(rm_start), preferences)
                        rm = self.train(trainer, job, "2/3 reward model", stack.processes["trainer"])
                self.say(self.describe_rm(rm))
                with self.clock.stage("start_services"):
                    proxy_url = stack.start_rewarder("proxy_rewarder", model=rm.checkpoint)
                    stack.start_orchestrator(stack.urls["generator"], proxy_url)
                    stack.wait_healthy()
                with self.clock.stage("raft"):
                    run = self.raft(stack, sft.checkpoint, data)
                checkpoints = [sft.checkpoint] + [it.checkpoint or "" for it in run.iterations]
                with self.clock.stage("evaluate"):
                    evaluations = asyncio.run(self.evaluate(stack, checkpoints, data))
            finally:
                swept = stack.close()
                if swept:
                    self.say(f"removed {len(swept)} temp entries left by interrupted writers")
            with self.clock.stage("perplexity"):
                ppl = self.perplexity(checkpoints, data)
            report = build_report(
                config=config,
                data_card=data.card,
                sft=sft,
                reward_model=rm,
                run=run,
                checkpoints=checkpoints,
                evaluations=evaluations,
                perplexities=ppl,
                stage_seconds=dict(self.clock.seconds),
                wall_seconds=self.clock.total,
            )
            write_report(report, self.out)
            return report

    def new_stack(self) -> LocalStack:
        """The local stack in the run directory (the embedded Redis unless REDIS_URL names one); its
        services run with the profile's torch threads."""
        self.out.mkdir(parents=True, exist_ok=True)
        return LocalStack(
            StackSettings(
                run_dir=self.out,
                torch_threads=self.config.torch_threads,
                start_timeout=self.config.service_start_timeout,
                redis_url=os.environ.get("REDIS_URL") or None,
            )
        )

    # -- stage 0 -----------------------------------------------------------------------------------

    def prepare(self) -> tuple[dict[str, Path], DemoData]:
        config = self.config
        self.say(f"building tiny models and the demo data in {self.out} (profile {config.profile})")
        models = build_models(self.out / "models", config.models.tiny_config(config.seed))
        d = config.data
        data = build_demo_data(
            self.out / "data",
            seed=config.seed,
            min_chars=d.min_chars,
            max_chars=d.max_chars,
            prompt_words=d.prompt_words,
            eval_prompts=d.eval_prompts,
            raft_prompts=d.raft_prompts,
            sft_examples=d.sft_examples,
            preference_pairs_count=d.preference_pairs,
            pair_min_gap=d.pair_min_gap,
        )
        card = data.card
        self.say(
            f"data: {card['sft_examples']} SFT pairs, {card['preference_pairs']} preference pairs, "
            f"{card['raft_prompts']} RAFT prompts, {card['eval_prompts']} eval prompts"
        )
        return models, data

    # -- stages 1 and 2: trainer jobs through Redis -------------------------------------------------

    def job_id(self, kind: str, *parts: object) -> str:
        """The job id names the checkpoint (the trainer is idempotent per id): hashing what decides
        the result means a re-run with the same settings reuses it, and changed settings train anew."""
        digest = hashlib.sha256(json.dumps([self.config.seed, *parts], sort_keys=True, default=str).encode())
        return f"demo-{kind}-{digest.hexdigest()[:10]}"

    def sft_job(self, policy: Path, data: DemoData) -> SFTJob:
        c = self.config
        training = TrainingConfig(
            max_steps=c.sft.steps,
            per_device_batch_size=c.sft.batch_size,
            learning_rate=c.sft.learning_rate,
            warmup_ratio=c.sft.warmup_ratio,
            loss_on=c.sft.loss_on,
            max_length=c.models.n_positions,
            seed=c.seed,
            logging_steps=10,
        )
        parts = (c.models.model_dump(), c.data.model_dump(), training.model_dump())
        return SFTJob(
            job_id=self.job_id("sft", *parts),
            model=str(policy),
            data=str(data.sft),
            output_dir=str(self.out / "checkpoints"),
            training=training,
            prompt_format="raw",  # a continuation task: the policy continues the fortune's first words
        )

    def reward_pairs(self, stack: LocalStack, policy: str, data: DemoData) -> Path:
        """The reward model's pairs: the corpus pairs alone, or mixed with on-policy pairs (the SFT
        policy's samples on ``policy_prompts`` SFT-set prompts, best vs worst by gold; see
        :mod:`raftflow_cli.demo.policy_pairs`). Sampled through the running generator and scored by the
        gold rewarder, seeded; the file is named by a hash of what decides it, like the training jobs,
        so a re-run with the same SFT checkpoint and settings reuses it (and then the reward model)."""
        c, options = self.config, self.config.reward_model
        if options.policy_prompts == 0:
            return data.preferences
        sampling = (c.raft.temperature, c.raft.top_p, c.raft.max_new_tokens, c.data.pair_min_gap)
        pairs_path = (
            data.directory / f"{self.job_id('policy-pairs', policy, options.model_dump(), sampling)}.jsonl"
        )
        prompts = sorted({p.prompt for p in load_pairs(data.sft)})
        random.Random(derive_seed(c.seed, "policy_pairs")).shuffle(prompts)
        prompts = prompts[: options.policy_prompts]
        if pairs_path.exists():
            policy_pairs = load_preferences(pairs_path)
            self.say(f"on-policy pairs: {len(policy_pairs)}, reused from {pairs_path.name}")
            return self.write_reward_pairs(data, policy_pairs, len(prompts))
        params = SamplingParams(
            max_tokens=c.raft.max_new_tokens,
            temperature=c.raft.temperature,  # RAFT's: the samples the proxy will be asked to rank
            top_p=c.raft.top_p,
            top_k=0,
            seed=derive_seed(c.seed, "policy_pairs"),
        )
        stack.wait_healthy("generator", "gold_rewarder")
        self.say(f"on-policy pairs: the SFT policy on {len(prompts)} prompts x {options.policy_samples}")

        async def sample() -> list[PreferencePair]:
            async with (
                CompletionsClient(stack.urls["generator"], api_token=stack.token) as generator,
                RewarderClient(stack.urls["gold_rewarder"], api_token=stack.token) as gold,
            ):
                return await policy_preference_pairs(
                    generator, gold, policy, prompts, options.policy_samples, params, c.data.pair_min_gap
                )

        policy_pairs = asyncio.run(sample())
        write_preferences_jsonl(pairs_path, policy_pairs)
        self.say(
            f"on-policy pairs: {len(policy_pairs)} of {len(prompts)} prompts (the rest: near-ties or blank)"
        )
        return self.write_reward_pairs(data, policy_pairs, len(prompts))

    def write_reward_pairs(self, data: DemoData, policy_pairs: list[PreferencePair], prompts: int) -> Path:
        """The reward-model job's file (corpus and on-policy pairs, shuffled together) and the counts
        in the data card."""
        path = data.directory / "reward_pairs.jsonl"
        corpus = load_preferences(data.preferences)
        write_preferences_jsonl(path, mixed_pairs(corpus, policy_pairs, self.config.seed))
        data.card["policy_prompts"] = prompts
        data.card["policy_pairs"] = len(policy_pairs)
        write_json_atomic(data.directory / "data_card.json", data.card)
        return path

    def reward_job(self, start: str, preferences: Path) -> RewardModelJob:
        c = self.config
        training = TrainingConfig(
            epochs=c.reward_model.epochs,
            per_device_batch_size=c.reward_model.batch_size,
            learning_rate=c.reward_model.learning_rate,
            warmup_ratio=0.05,
            max_length=c.models.n_positions,
            seed=c.seed,
            logging_steps=10,
        )
        parts = (start, c.data.model_dump(), training.model_dump(), c.reward_model.model_dump())
        return RewardModelJob(
            job_id=self.job_id("rm", *parts),
            model=start,
            data=str(preferences),
            output_dir=str(self.out / "checkpoints"),
            training=training,
            eval_fraction=c.reward_model.eval_fraction,
        )

    def train(
        self, trainer: TrainerClient, job: SFTJob | RewardModelJob, label: str, worker: ServiceProcess
    ) -> JobResult:
        """Submit through Redis and follow the job with a bar (steps, loss). A job waits in the queue
        until a worker takes it, so a worker that died must be noticed here or the wait never ends."""
        trainer.submit(job)
        with tqdm(desc=label, unit="step", dynamic_ncols=True, leave=True) as bar:
            last: list[JobProgress] = []

            def on_progress(progress: JobProgress) -> None:
                if not worker.alive():
                    raise DemoFailed(f"the trainer worker exited:\n{worker.log_tail()}")
                # The client polls twice as often as the worker reports: draw each report once.
                if last and last[0] == progress:
                    return
                last[:] = [progress]
                if progress.total_steps and bar.total != progress.total_steps:
                    bar.total = progress.total_steps
                bar.n = progress.step
                postfix = {"state": progress.state.lower()}
                if progress.loss is not None:
                    postfix["loss"] = f"{progress.loss:.3f}"
                bar.set_postfix(postfix, refresh=True)

            try:
                return trainer.wait(job.job_id, poll_interval=0.5, on_progress=on_progress)
            except DemoFailed:
                raise
            except Exception as exc:
                raise DemoFailed(f"{label} failed: {exc} (see the trainer log)") from exc

    def describe_rm(self, rm: JobResult) -> str:
        accuracy = rm.metrics.get("eval_accuracy")
        shown = f"{accuracy:.3f}" if accuracy is not None else "n/a"
        return f"proxy reward model: held-out pairwise accuracy {shown} (gold-labelled pairs)"

    # -- stage 3: RAFT through the orchestrator ------------------------------------------------------

    def raft_request(self, stack: LocalStack, policy: str, data: DemoData) -> RunRequest:
        c, r = self.config, self.config.raft
        return RunRequest(
            policy=policy,
            prompts=str(data.raft_prompts),
            prompt_format="raw",
            rewarder_url=stack.urls["proxy_rewarder"],
            gold_rewarder_url=stack.urls["gold_rewarder"],
            num_iterations=r.iterations,
            prompts_per_iteration=r.prompts_per_iteration,
            k=r.k,
            selection=r.selection,
            global_fraction=r.global_fraction,
            temperature=r.temperature,
            top_p=r.top_p,
            top_k=0,
            max_new_tokens=r.max_new_tokens,
            training=TrainingConfig(
                epochs=r.epochs,
                learning_rate=r.learning_rate,
                per_device_batch_size=r.batch_size,
                warmup_ratio=r.warmup_ratio,
                max_length=c.models.n_positions,
                seed=c.seed,
                logging_steps=10,
            ),
            seed=c.seed,
            eval_prompts=str(data.eval_prompts),
            max_eval_prompts=c.data.eval_prompts,
            kl_coef=r.kl_coef,
            sft_mix_data=str(data.sft) if r.sft_mix_ratio > 0 else None,
            sft_mix_ratio=r.sft_mix_ratio,
            min_reward_margin=r.min_reward_margin,
        )

    def raft(self, stack: LocalStack, policy: str, data: DemoData) -> RunView:
        """``POST /iterations``, then follow ``GET /iterations/{id}`` with a bar until it ends."""
        body = self.raft_request(stack, policy, data).model_dump(mode="json", exclude_none=True)
        base = stack.urls["orchestrator"]
        with httpx.Client(base_url=base, headers=stack.auth_headers, timeout=30.0) as http:
            self.cancel_stale_runs(http)
            created = http.post("/iterations", json=body)
            if created.status_code != 202:
                raise DemoFailed(f"POST /iterations answered {created.status_code}: {created.text}")
            run_id = created.json()["id"]
            self.say(f"RAFT run {run_id}: {base}/iterations/{run_id}")
            total = self.config.raft.iterations
            with tqdm(total=100.0, desc="3/3 RAFT", unit="%", dynamic_ncols=True, leave=True) as bar:
                bar.bar_format = "{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}{postfix}]"
                shown: tuple = ()
                while True:
                    view = RunView.model_validate(http.get(f"/iterations/{run_id}").raise_for_status().json())
                    state = (view.percent_complete, view.current_iteration, view.stage, view.status)
                    if state != shown:  # redraw on change only, not on every poll
                        shown = state
                        bar.n = max(bar.n, view.percent_complete)  # a resumed stage may report less
                        bar.set_postfix(
                            {
                                "iteration": f"{min(view.current_iteration + 1, total)}/{total}",
                                "stage": view.stage or view.status,
                            },
                            refresh=True,
                        )
                    if view.status in _FINAL:
                        break
                    time.sleep(0.5)
        if view.status != "succeeded":
            raise DemoFailed(f"RAFT run {run_id} {view.status}: {view.error} (see logs/orchestrator.log)")
        return view

    def cancel_stale_runs(self, http: httpx.Client) -> None:
        """An interrupted demo leaves its run active in the run directory's store, and the orchestrator
        would resume it first; but its request names the old stack's ports, which are gone. Cancel it
        (the SFT and reward-model checkpoints are reused; RAFT starts again)."""
        for run in http.get("/iterations", params={"limit": 500}).raise_for_status().json():
            if run["status"] in ("queued", "running", "awaiting_checkpoint"):
                http.post(f"/iterations/{run['id']}/cancel")
                self.say(f"cancelled RAFT run {run['id']}, left by an interrupted demo (its stack is gone)")

    # -- stage 4: judge every checkpoint ---------------------------------------------------------------

    async def evaluate(self, stack: LocalStack, checkpoints: list[str], data: DemoData) -> list[dict]:
        c = self.config
        prompts = load_prompts(data.eval_prompts)[: c.data.eval_prompts]
        params = SamplingParams(
            max_tokens=c.raft.max_new_tokens,
            temperature=c.eval.temperature or c.raft.temperature,
            top_p=c.raft.top_p,
            top_k=0,
            seed=c.seed + 12345,  # one seed for all checkpoints: rows differ only by the weights
        )
        token = stack.token
        async with (
            CompletionsClient(stack.urls["generator"], api_token=token) as generator,
            RewarderClient(stack.urls["proxy_rewarder"], api_token=token) as proxy,
            RewarderClient(stack.urls["gold_rewarder"], api_token=token) as gold,
        ):
            clients = EvalClients(generator, proxy, gold)
            results = []
            for index, checkpoint in enumerate(tqdm(checkpoints, desc="evaluate", unit="ckpt", leave=True)):
                results.append(
                    await evaluate_checkpoint(
                        clients,
                        checkpoint,
                        prompts,
                        c.eval.samples,
                        params,
                        self.out / "eval" / f"iter-{index:02d}-samples.json",
                    )
                )
        return results

    def perplexity(self, checkpoints: list[str], data: DemoData) -> list[float]:
        pairs = load_pairs(data.heldout)[: self.config.eval.perplexity_examples]
        with tqdm(total=len(checkpoints), desc="perplexity", unit="ckpt", leave=True) as bar:
            return perplexities(checkpoints, pairs, on_done=lambda: bar.update(1))
