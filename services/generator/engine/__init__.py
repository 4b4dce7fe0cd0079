"""Sampling engines behind the HTTP routes: in-process transformers, or a remote TGI server."""

from services.generator.engine.types import (
    BackendRejected,
    ContextLengthExceeded,
    Engine,
    GeneratedSample,
    GenerationJob,
    GenerationOutput,
    LoadFailed,
    LogprobsOutput,
    ModelChoice,
    ModelState,
    NoReferenceModel,
    PromptFormatRejected,
    ScoringJob,
    UnsupportedOperation,
)

__all__ = [
    "BackendRejected",
    "ContextLengthExceeded",
    "Engine",
    "GeneratedSample",
    "GenerationJob",
    "GenerationOutput",
    "LoadFailed",
    "LogprobsOutput",
    "ModelChoice",
    "ModelState",
    "NoReferenceModel",
    "PromptFormatRejected",
    "ScoringJob",
    "UnsupportedOperation",
]
