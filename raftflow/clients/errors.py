"""Errors that clients raise, shared so the orchestrator can report which component failed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
    ``str()`` carries the service's own reason (``detail``) for a person at a terminal;
    :meth:`summary` leaves it out, for places that must never echo a remote body (a run's error).
    """

    def __init__(self, component: str, status_code: int, detail: object, url: str | None = None):
        self.component = component
        self.status_code = status_code
        self.detail = detail
        self.url = url
        super().__init__(f"{component} rejected the request ({self._status()}): {detail}")

    def _status(self) -> str:
        reason = _AUTH_REASONS.get(self.status_code)
        return f"{self.status_code} {reason}" if reason else str(self.status_code)

    def summary(self) -> str:
        """Which service refused, with which status, and what to check, without its answer's text."""
        where = f" at {self.url}" if self.url else ""
        check = _CHECKS.get(self.status_code, _CHECKS[422] if self.status_code in (400, 422) else "")
        return f"the {self.component}{where} refused a request with HTTP {self._status()}" + (
            f": {check}" if check else ""
        )


class ComponentMisbehaved(RuntimeError):
    """A service answered 2xx (or an error) in a shape its API never uses: probably not the kind of
    server the URL was meant to name. The answer's text is not repeated."""

    def __init__(
        self, component: str, url: str, api: str, cause: BaseException | None = None, detail: str = ""
    ):
        self.component, self.url = component, url
        what = detail or (cause.__class__.__name__ if cause else "")
        super().__init__(
            f"the {component} at {url} answered in a shape that {api} never uses"
            + (f" ({what})" if what else "")
            + ": check that the URL names such a server"
        )


@contextmanager
def unexpected_answer(component: str, url: str, api: str) -> Iterator[None]:
    """Turn a parse failure of an answer (a missing key, a wrong type) into
    :class:`ComponentMisbehaved`, so the caller reports a sentence, not ``KeyError: 'error'``."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise ComponentMisbehaved(component, url, api, exc) from exc


_AUTH_REASONS = {
    401: "unauthorized: the API token (RAFTFLOW_API_TOKEN / RAFTFLOW_API_TOKEN_FILE) is missing or not "
    "the one this service expects",
    403: "forbidden",
}
# What to look at, by status, when a run's error cannot quote the service's own reason.
_CHECKS = {
    404: "the URL may not name a raftflow service of this kind, or the checkpoint or model is missing",
    409: "the service is in a state that refuses this call (e.g. sleep mode needs the vllm engine)",
    413: "a request body was over the service's size limit (RAFTFLOW_MAX_BODY_BYTES)",
    422: "the service refused the request's content (a limit such as max n, max tokens or context "
    "length); its log and the orchestrator's log give the reason",
}
