"""The files RAFT's stages hand to each other: ``samples.json`` (sample -> score) and ``scores.json``
(score -> select). The orchestrator writes them per iteration and the ``raftflow sample / score /
select`` commands read and write the same shapes, so any stage of a run can be redone by hand
(LMFlow-RAFT ran its stages as separate scripts on files for this reason).

Each record carries its prompt: a file is enough for the next stage, without the prompt dataset.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raftflow.schemas.generation import Sample


class SampledPrompt(BaseModel):
    """One prompt and its K sampled responses (one record of ``samples.json``)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    samples: list[Sample] = Field(min_length=1)


class ScoredPrompt(SampledPrompt):
    """One prompt, its K responses and one reward per response (one record of ``scores.json``)."""

    rewards: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_reward_per_sample(self) -> ScoredPrompt:
        if len(self.rewards) != len(self.samples):
            raise ValueError(
                f"rewards has {len(self.rewards)} entries for {len(self.samples)} samples: one per sample"
            )
        return self
