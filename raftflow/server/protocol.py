"""uvicorn's h11 protocol with a deadline for the request head (slowloris)."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on the request head (request line and headers).

    uvicorn arms its keep-alive timer only after a response and resets it on every byte received,
    so a connection that never sends a request, trickles its headers a byte at a time, or keeps
    sending the unread body of an answered request is held open forever. Here a request must be under
    way ``head_timeout`` seconds after the connection opens or the previous response ends, or the
    connection is closed. Subclass it with :func:`head_timeout_protocol` to set the deadline.
    """

    head_timeout: float = 10.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        # No request in progress: either no complete head arrived since the deadline was armed, or
        # the client is still sending the body of a request already answered without reading it (a
        # 404 or 401), which uvicorn would discard for as long as the client cares to send it. A
        # request in progress is left alone: its body has its own deadline (BodyReadTimeout).
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def head_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """The uvicorn ``http=`` protocol class with a ``seconds`` request-head deadline."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout": seconds})
