"""A Python function as the reward source (rule-based or verifiable rewards).

The function is named in the service's settings (``module:function``) and imported once at start-up;
a request can never choose code to run. The protocol is ``fn(items: list[RewardItem]) -> list[float]``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from typing import Literal

from raftflow.conversation import Span
from raftflow.schemas.reward import RewardItem
from services.rewarder.sources.base import Prepared

RewardFunction = Callable[[list[RewardItem]], list[float]]


def import_function(spec: str) -> RewardFunction:
    """Resolve ``package.module:attr`` (``attr`` may be dotted, e.g. ``Class.method``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"reward function {spec!r} must look like 'package.module:function'")
    target: object = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"reward function {spec!r} is not callable")
    return target  # type: ignore[return-value]


def source_version(fn: object) -> str:
    """A hash of the function's source: changes when the reward's code changes, so stored scores can be
    told apart by the code that produced them."""
    try:
        text = inspect.getsource(fn)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return "unknown"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class FunctionSource:
    kind: Literal["function"] = "function"
    tokenizer = None
    config = None
    max_length = None
    device = None
    dtype = None

    def __init__(self, spec: str):
        self.name = spec
        self.fn = import_function(spec)
        self.version = source_version(self.fn)

    def prepare(
        self, items: list[RewardItem], prompt_spans: list[Span | None], template: bool
    ) -> list[Prepared]:
        return [Prepared(item=item, length=len(item.text)) for item in items]

    def score(self, batch: list[Prepared]) -> list[float]:
        return list(self.fn([prepared.item for prepared in batch]))
