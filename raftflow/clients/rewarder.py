"""Async client of the rewarder service, used by the orchestrator, the demo and the benchmark.

Large calls are split into requests of ``items_per_request`` items, sent a few at a time (so the
service can batch them together) and reassembled in order. A rewarder that is down or restarting is
retried (connection errors, timeouts, 5xx) for up to ``retry_seconds``, then reported as
:class:`ComponentUnavailable`; a 4xx means the request itself is wrong and raises
:class:`ComponentRejected` at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from raftflow.chunks import REWARDER_REQUESTS_IN_FLIGHT, map_chunks
from raftflow.clients.http import ServiceHTTP

COMPONENT = "rewarder"


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
        return await self._score_chunks(pairs, lambda chunk: {"inputs": chunk, "normalize": normalize})

    async def score_texts(self, texts: list[str]) -> list[float]:
        """Scores of texts already formatted the way the reward model expects."""
        return await self._score_chunks(texts, lambda chunk: {"texts": chunk})

    async def info(self) -> dict[str, Any]:
        return await self._request("GET", "/info")

    async def _score_chunks(
        self, items: Sequence[Any], body: Callable[[list[Any]], dict[str, Any]]
    ) -> list[float]:
        """``POST /score`` per chunk of ``items_per_request`` items (``body(chunk)``), scores in order."""
        size = self.items_per_request

        async def one(start: int) -> list[float]:
            chunk = list(items[start : start + size])
            answer = await self._request("POST", "/score", body(chunk))
            if len(answer["scores"]) != len(chunk):
                raise RuntimeError(f"rewarder returned {len(answer['scores'])} scores for {len(chunk)} items")
            return answer["scores"]

        results = await map_chunks(len(items), size, one, REWARDER_REQUESTS_IN_FLIGHT)
        return [score for chunk in results for score in chunk]

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._service.request(method, path, body)
