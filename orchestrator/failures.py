"""What a failed run's ``error`` says: one sentence naming the cause, never a remote service's text.

A run's error is shown to whoever can read runs (the API, the dashboard). A service's answer body does
not belong there: quoted word for word, it let a caller read what any URL answered. The service's own
reason still reaches the operator, in the orchestrator's log under the run's id.
"""

from __future__ import annotations

import logging

from orchestrator.service_urls import ServiceURLNotAllowed
from raftflow.clients.errors import ComponentMisbehaved, ComponentRejected, ComponentUnavailable
from raftflow.data import DataError

log = logging.getLogger(__name__)


def describe_failure(run_id: str, exc: BaseException) -> str:
    """The run's error for ``exc``; a rejected request's remote detail goes to the log instead."""
    if isinstance(exc, ComponentRejected):
        log.warning("run %s: the %s answered %s: %s", run_id, exc.component, exc.status_code, exc.detail)
        return exc.summary()
    if isinstance(exc, (ComponentUnavailable, ComponentMisbehaved, ServiceURLNotAllowed, DataError)):
        return str(exc)  # our own sentences: names, URLs, timings, statuses
    if isinstance(exc, UnicodeError):
        return (
            "text that is not valid Unicode (a lone surrogate, e.g. an escaped \\ud800 in a data file) "
            f"reached a step that encodes it ({exc.__class__.__name__}); fix the data and start a new run"
        )
    return f"{exc.__class__.__name__}: {exc}"
