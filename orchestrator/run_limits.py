"""How big a run may be, checked at ``POST /iterations``: a run the services would refuse (``k: 256``
past the generator's ``GENERATOR_MAX_N``) failed at its first sample, and one far too large
(100,000 prompts x 64 samples an iteration) was accepted and held the queue. The limits are the
orchestrator's own settings, defaulting to the generator's defaults; an operator who raises the
generator's limits raises these beside them."""

from __future__ import annotations

from orchestrator.settings import OrchestratorSettings
from raftflow.schemas.runs import RunRequest
from raftflow.server import limit_error


def check_run_size(body: RunRequest, settings: OrchestratorSettings) -> None:
    """422 naming the field and the setting when ``body`` is over a limit."""
    k = body.samples_per_prompt
    field_k = "k" if body.k is not None or body.top_reward_percentage is None else "top_reward_percentage"
    if k > settings.max_k:
        raise limit_error(
            field_k,
            f"{k} samples per prompt is over the limit of {settings.max_k} (ORCHESTRATOR_MAX_K, "
            "which should match the generator's GENERATOR_MAX_N)",
            value=k,
            limit=settings.max_k,
        )
    if body.max_new_tokens > settings.max_new_tokens:
        raise limit_error(
            "max_new_tokens",
            f"{body.max_new_tokens} is over the limit of {settings.max_new_tokens} "
            "(ORCHESTRATOR_MAX_NEW_TOKENS, which should match the generator's GENERATOR_MAX_TOKENS)",
            value=body.max_new_tokens,
            limit=settings.max_new_tokens,
        )
    samples = body.prompts_per_iteration * k
    if samples > settings.max_samples_per_iteration:
        raise limit_error(
            "prompts_per_iteration",
            f"{body.prompts_per_iteration} prompts x {k} samples = {samples} samples an iteration, over "
            f"the limit of {settings.max_samples_per_iteration} (ORCHESTRATOR_MAX_SAMPLES_PER_ITERATION)",
            value=body.prompts_per_iteration,
            limit=settings.max_samples_per_iteration,
        )
