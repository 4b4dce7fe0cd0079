"""Reward sources behind one interface: a sequence-classifier model (in process, or served by vLLM) or
a ``module:function``."""

from __future__ import annotations

from services.rewarder.settings import RewarderSettings
from services.rewarder.sources.base import ItemRejected, Prepared, RewardSource, RewardSourceError


def build_source(settings: RewarderSettings) -> RewardSource:
    """Load what the settings name (blocking: a model load takes seconds to minutes)."""
    if settings.function is not None:
        from services.rewarder.sources.function import FunctionSource

        return FunctionSource(settings.function)
    if settings.vllm_url is not None:
        from services.rewarder.sources.vllm_pooling import VLLMPoolingSource  # no torch model here

        return VLLMPoolingSource(settings)
    from services.rewarder.sources.model import ModelSource  # imports torch; function sources never do

    return ModelSource(settings)


__all__ = ["ItemRejected", "Prepared", "RewardSource", "RewardSourceError", "build_source"]
