"""Cancel a request's work when its client disconnects.

uvicorn does not cancel a handler whose client went away: for a plain (non-streaming) response it only
records the disconnect and answers the app's next ``receive()`` with ``http.disconnect``; the handler
runs to its end and the answer is dropped. For a service whose requests hold a model for seconds or
minutes, that is work nobody will read, queued ahead of requests someone is waiting for (12 abandoned
4 x 64 x 240-token generations once made the next tiny request wait 54 s). So a route races its work
against a task that waits for the disconnect, and the first to finish cancels the other: the pattern
of Starlette's ``StreamingResponse`` and of vLLM's ``with_cancellation``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import HTTPException, Request
from starlette.types import Receive

T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request its client abandoned; only the request counts ever see it."""


class ClientDisconnected(HTTPException):
    """The client left before the answer. Raised as a 499, which no client reads (uvicorn drops what
    is sent on a closed connection) but the request counts record, so abandoned requests show."""

    def __init__(self) -> None:
        super().__init__(CLIENT_CLOSED_REQUEST, "the client closed the connection before the answer")


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """``await work``, or cancel it as soon as the client disconnects and raise :class:`ClientDisconnected`
    (after the work has run its cancellation handlers, so what it holds is released first).

    Call it once the request body has been read (a FastAPI handler with a body parameter): the watcher
    consumes whatever else arrives on the connection while it looks for the disconnect.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        done, _ = await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler was cancelled itself (shutdown): the work goes with it
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:  # finished first (or with the disconnect): its answer, or its error, as usual
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise ClientDisconnected()


async def _disconnected(receive: Receive) -> None:
    """Returns when ``http.disconnect`` arrives. Anything else (a server may wake a reader with an empty
    body message) is skipped, after a short pause so a server that answers at once cannot spin us."""
    while (await receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)
