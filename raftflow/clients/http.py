"""What every raftflow HTTP client shares: bearer headers, retries with backoff for a bounded window,
fail-fast fan-out, and the mapping of failures to the errors the orchestrator reports.

The contract, the same for the generator, the rewarder and TGI: a server that is unreachable, times
out or answers 5xx may come back (restart, reload, overload), so it is retried with exponential
backoff for ``retry_seconds`` and then reported as :class:`ComponentUnavailable` naming the
component; a 4xx means the request itself is wrong (or the token is), so it raises
:class:`ComponentRejected` at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from raftflow.clients.errors import ComponentRejected, ComponentUnavailable

T = TypeVar("T")

# A server that does not even accept the connection within this long is down, whatever the (long)
# read timeout allows for a big generation.
CONNECT_TIMEOUT_S = 10.0


def auth_headers(api_token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"} if api_token else {}


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    component: str,
    url: str,
    retry_seconds: float,
    transient: Callable[[BaseException], bool],
) -> T:
    """Await ``call()``, retrying transient failures with exponential backoff for up to
    ``retry_seconds``; then raise :class:`ComponentUnavailable` naming the component and how long it
    was waited for. Non-transient errors propagate at once."""
    started = time.monotonic()
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(transient),
            stop=stop_after_delay(retry_seconds),
            wait=wait_exponential(multiplier=0.25, max=5.0),
            reraise=True,
        ):
            with attempt:
                return await call()
    except Exception as exc:
        if transient(exc):
            raise ComponentUnavailable(component, url, time.monotonic() - started, exc) from exc
        raise
    raise AssertionError("unreachable: tenacity either returns or raises")


async def gather_failfast(awaitables: list[Awaitable[T]]) -> list[T]:
    """Results in order; on the first failure the others are cancelled and THAT error is raised
    (not the ExceptionGroup a TaskGroup raises), so callers catch ComponentUnavailable/Rejected."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(awaitable)) for awaitable in awaitables]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def transient_http(exc: BaseException) -> bool:
    """Connection failures, timeouts and 5xx: the server may come back."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


def error_detail(response: httpx.Response) -> object:
    """FastAPI's ``detail`` (a message, or the list of 422 errors naming field and limit)."""
    try:
        payload = response.json()
    except ValueError:
        return response.text
    return payload.get("detail", payload) if isinstance(payload, dict) else payload


class ServiceHTTP:
    """A JSON-over-HTTP connection to one raftflow service (or an OpenAI-compatible server), with the
    module's retry contract on every request."""

    def __init__(
        self,
        component: str,
        base_url: str,
        api_token: str | None = None,
        timeout: float = 600.0,
        retry_seconds: float = 60.0,
    ) -> None:
        self.component = component
        self.base_url = base_url.rstrip("/")
        self.retry_seconds = retry_seconds
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=auth_headers(api_token),
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, json: Any = None) -> Any:
        """The decoded JSON answer of ``method path``."""

        async def once() -> Any:
            response = await self._http.request(method, path, json=json)
            if 400 <= response.status_code < 500:
                raise ComponentRejected(
                    self.component, response.status_code, error_detail(response), self.base_url + path
                )
            response.raise_for_status()
            return response.json()

        return await with_retries(
            once,
            component=self.component,
            url=self.base_url + path,
            retry_seconds=self.retry_seconds,
            transient=transient_http,
        )
