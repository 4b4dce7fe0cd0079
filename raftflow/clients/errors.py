"""Errors that clients raise, shared so the orchestrator can report which component failed."""

from __future__ import annotations


class ComponentUnavailable(RuntimeError):
    """A service stayed unreachable (connection refused, timeouts, 5xx) past the retry window.

    ``component`` names it (``generator``, ``rewarder``, ``trainer``) so a failed run says which part
    of the stack was down, not just that an HTTP call failed.
    """

    def __init__(self, component: str, url: str, waited_s: float, cause: BaseException | None = None):
        self.component = component
        self.url = url
        self.waited_s = waited_s
        detail = f": {cause.__class__.__name__}: {cause}" if cause else ""
        super().__init__(f"{component} at {url} unavailable for {waited_s:.0f}s{detail}")


class ComponentRejected(RuntimeError):
    """A service answered with a 4xx: retrying cannot help, the request itself is wrong."""

    def __init__(self, component: str, status_code: int, detail: object):
        self.component = component
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{component} rejected the request ({status_code}): {detail}")
