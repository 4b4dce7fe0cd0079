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
    """A service answered with a 4xx: retrying cannot help, the request itself is wrong.

    A 401/403 says so in words (unauthorized, and which setting holds the token): a run that failed
    because two services disagree on the token should read as a configuration error, not a bad body.
    """

    def __init__(self, component: str, status_code: int, detail: object):
        self.component = component
        self.status_code = status_code
        self.detail = detail
        reason = _AUTH_REASONS.get(status_code)
        status = f"{status_code} {reason}" if reason else str(status_code)
        super().__init__(f"{component} rejected the request ({status}): {detail}")


_AUTH_REASONS = {
    401: "unauthorized: the API token (RAFTFLOW_API_TOKEN / RAFTFLOW_API_TOKEN_FILE) is missing or not "
    "the one this service expects",
    403: "forbidden",
}
