"""Async client of the rewarder service, used by the orchestrator, the demo and the benchmark.

Large calls are split into requests of ``items_per_request`` items, sent a few at a time (so the
service can batch them together) and reassembled in order. A rewarder that is down or restarting is
retried (connection errors, timeouts, 5xx) for up to ``retry_seconds``, then reported as
:class:`ComponentUnavailable`; a 4xx means the request itself is wrong and raises
:class:`ComponentRejected` at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from raftflow.clients.http import ServiceHTTP

COMPONENT = "rewarder"
# Requests in flight per call: enough for the service to coalesce them into full batches, few enough
# that one huge call does not monopolise the rewarder's queue.
CONCURRENT_REQUESTS = 4


class RewarderClient:
    def __init__(
        self,
        base_url: str,
        api_token: str | None = None,
        timeout: float = 600.0,
        retry_seconds: float = 60.0,
        items_per_request: int = 64,
    ):
        if items_per_request < 1:
            raise ValueError("items_per_request must be >= 1")
        self._service = ServiceHTTP(COMPONENT, base_url, api_token, timeout, retry_seconds)
        self.base_url = self._service.base_url
        self.items_per_request = items_per_request

    async def __aenter__(self) -> RewarderClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._service.aclose()

    async def score(self, prompts: list[str], responses: list[str], normalize: bool = False) -> list[float]:
        """One score per (prompt, response), in order. ``normalize`` needs a rewarder started with a
        calibration set (else :class:`ComponentRejected`, 422)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        pairs = [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]
        return await self._score_chunks(
            [{"inputs": chunk, "normalize": normalize} for chunk in self._chunks(pairs)]
        )

    async def score_texts(self, texts: list[str]) -> list[float]:
        """Scores of texts already formatted the way the reward model expects."""
        return await self._score_chunks([{"texts": chunk} for chunk in self._chunks(texts)])

    async def info(self) -> dict[str, Any]:
        return await self._request("GET", "/info")

    def _chunks(self, items: Sequence[Any]) -> list[list[Any]]:
        size = self.items_per_request
        return [list(items[start : start + size]) for start in range(0, len(items), size)]

    async def _score_chunks(self, bodies: list[dict[str, Any]]) -> list[float]:
        gate = asyncio.Semaphore(CONCURRENT_REQUESTS)

        async def one(body: dict[str, Any]) -> list[float]:
            async with gate:
                answer = await self._request("POST", "/score", body)
            expected = len(body.get("inputs") or body.get("texts") or [])
            if len(answer["scores"]) != expected:
                raise RuntimeError(f"rewarder returned {len(answer['scores'])} scores for {expected} items")
            return answer["scores"]

        results = await asyncio.gather(*(one(body) for body in bodies))
        return [score for chunk in results for score in chunk]

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._service.request(method, path, body)
