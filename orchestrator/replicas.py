"""Several generator or rewarder replicas behind the loop's one sampler, policy server and scorer.

Why not one URL in front of a load balancer: RAFT loads each new checkpoint into the generator, and a
load through a balanced Service reaches ONE replica, so the others would go on sampling the old
policy. The orchestrator therefore knows every replica: a load goes to all of them and the run goes
on only when all serve it; sampling and scoring calls go to whichever replica has room: at most the
generator client's requests in flight per generator (``raftflow.chunks``; each call is one request),
one call per rewarder (``orchestrator.raft_loop.Backends`` says why). A replica that stays unreachable
past its client's retry window is dropped with a warning while others remain, and its call is redone
on another (same chunk, same seed: the same samples where the replicas are the same engine).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Generic, Literal, TypeVar

from orchestrator.backends import GeneratorPolicyServer, RewardScorer
from raftflow.clients.errors import ComponentUnavailable
from raftflow.schemas.generation import Sample, SamplingParams

log = logging.getLogger(__name__)
R = TypeVar("R")
T = TypeVar("T")


class ReplicaPool(Generic[R]):
    def __init__(
        self, replicas: Sequence[R], name: Callable[[R], str], component: str, in_flight: int = 1
    ) -> None:
        if not replicas:
            raise ValueError(f"no {component} replica")
        self.alive: list[R] = list(replicas)
        self._name = name
        self._component = component
        # One slot per call a replica may have in flight, interleaved so load spreads over replicas
        # before any replica gets a second call.
        self._free: asyncio.Queue[R] = asyncio.Queue()
        for _ in range(max(1, in_flight)):
            for replica in self.alive:
                self._free.put_nowait(replica)

    def __len__(self) -> int:
        return len(self.alive)

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[R]:
        replica = await self._free.get()
        while replica not in self.alive:  # dropped (by a load) while it waited in the queue
            replica = await self._free.get()
        try:
            yield replica
        finally:
            if replica in self.alive:
                self._free.put_nowait(replica)

    async def call(self, fn: Callable[[R], Awaitable[T]]) -> T:
        """``fn(replica)`` on a free replica; one that stays unavailable is dropped (while others remain)
        and the call is redone on another."""
        while True:
            async with self._lease() as replica:
                try:
                    return await fn(replica)
                except ComponentUnavailable as exc:
                    self._drop(replica, exc)

    async def each(self, fn: Callable[[R], Awaitable[T]]) -> list[T]:
        """``fn`` on every live replica at once (loads): unavailable ones are dropped while others
        remain; any other failure fails the call."""
        replicas = list(self.alive)
        results = await asyncio.gather(*(fn(r) for r in replicas), return_exceptions=True)
        values: list[T] = []
        for replica, result in zip(replicas, results, strict=True):
            if isinstance(result, ComponentUnavailable):
                self._drop(replica, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                values.append(result)
        return values

    def _drop(self, replica: R, exc: ComponentUnavailable) -> None:
        if replica not in self.alive:
            return
        if len(self.alive) <= 1:
            raise exc  # the last one: nothing to fall back on, the run fails naming it
        self.alive.remove(replica)
        log.warning(
            "%s replica %s unavailable (%s); dropped, %d left", self._component, self._name(replica), exc,
            len(self.alive),
        )  # fmt: skip


class GeneratorPool(ReplicaPool[GeneratorPolicyServer]):
    """The sampler and policy server of a run over several raftflow generators."""

    def __init__(self, replicas: Sequence[GeneratorPolicyServer], in_flight: int = 1) -> None:
        super().__init__(replicas, lambda r: r.client.base_url, "generator", in_flight)

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        return await self.call(lambda r: r.client.sample(prompts, n, params))

    async def ensure_loaded(self, checkpoint: str) -> None:
        await self.each(lambda r: r.ensure_loaded(checkpoint))

    async def serves(self, checkpoint: str) -> bool:
        return all(await self.each(lambda r: r.serves(checkpoint)))

    async def ensure_reference(self, checkpoint: str) -> None:
        await self.each(lambda r: r.ensure_reference(checkpoint))

    async def sample_logprobs(
        self, prompts: list[str], samples: list[Sample], model: Literal["current", "reference"] = "current"
    ) -> list[float]:
        return await self.call(lambda r: r.sample_logprobs(prompts, samples, model))

    async def perplexity(self, prompts: list[str], responses: list[str]) -> float:
        return await self.call(lambda r: r.perplexity(prompts, responses))

    async def sleep(self) -> None:
        await self.each(lambda r: r.sleep())

    async def wake_up(self) -> None:
        await self.each(lambda r: r.wake_up())


class RewarderPool(ReplicaPool[RewardScorer]):
    def __init__(self, replicas: Sequence[RewardScorer]) -> None:
        super().__init__(replicas, lambda r: r.client.base_url, "rewarder")

    async def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        return await self.call(lambda r: r.score(prompts, responses))
