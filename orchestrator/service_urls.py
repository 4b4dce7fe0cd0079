"""Which service URLs a run may name, and the one token the orchestrator sends to services.

A run body can point its sampling and scoring at other servers (``generator_url(s)``,
``rewarder_url(s)``, ``gold_rewarder_url``, a TGI server). Unchecked, any caller with the API token
could make the orchestrator send the services' bearer token, the run's prompts and its samples to an
address of their choosing, read the answer back from the run's error, and probe which ports are open.
So a per-run URL must be one the operator configured: the service URLs the orchestrator starts with
(``GENERATOR_URL(S)``, ``REWARDER_URL(S)``) plus ``ORCHESTRATOR_ALLOWED_SERVICE_URLS``. Anything else
is a 422 naming the field, before anything is sent.
"""

from __future__ import annotations

import httpx

from orchestrator.settings import OrchestratorSettings
from raftflow.schemas.runs import RunRequest
from raftflow.server import limit_error

# The run fields that name a service, in the order a 422 reports them.
URL_FIELDS = ("generator_url", "generator_urls", "rewarder_url", "rewarder_urls", "gold_rewarder_url")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ServiceURLNotAllowed(ValueError):
    """A run names a service URL the operator did not allow (a stored run from before the allowlist
    changed, when it resumes)."""


def normalize_url(url: object) -> str:
    """One spelling per address: scheme and host lower-case, the port explicit, no trailing slash, so
    ``http://Gen:80/`` and ``http://gen`` are the same entry."""
    parsed = httpx.URL(str(url))
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)
    userinfo = f"{parsed.userinfo.decode()}@" if parsed.userinfo else ""
    query = f"?{parsed.query.decode()}" if parsed.query else ""
    return f"{parsed.scheme}://{userinfo}{parsed.host}:{port}{parsed.path.rstrip('/')}{query}"


def allowed_service_urls(settings: OrchestratorSettings) -> set[str]:
    """The normalized URLs a run may name: the configured services and the operator's allowlist."""
    configured = [
        settings.generator_url,
        settings.rewarder_url,
        *settings.generator_urls,
        *settings.rewarder_urls,
        *settings.allowed_service_urls,
    ]
    return {normalize_url(url) for url in configured}


def disallowed_run_url(request: RunRequest, settings: OrchestratorSettings) -> tuple[str, str] | None:
    """``(field, url)`` of the first service URL of ``request`` outside the allowlist, else None;
    a list field is named with the index (``generator_urls.1``)."""
    allowed = allowed_service_urls(settings)
    for field in URL_FIELDS:
        value = getattr(request, field)
        if value is None:
            continue
        entries = (
            [(f"{field}.{i}", url) for i, url in enumerate(value)]
            if isinstance(value, list)
            else [(field, value)]
        )
        for name, url in entries:
            if normalize_url(url) not in allowed:
                return name, str(url)
    return None


def check_run_urls(request: RunRequest, settings: OrchestratorSettings) -> None:
    """422 naming the first field whose URL the operator did not allow."""
    refused = disallowed_run_url(request, settings)
    if refused is not None:
        field, url = refused
        raise limit_error(field, _why(url), value=url)


def ensure_run_urls_allowed(request: RunRequest, settings: OrchestratorSettings) -> None:
    """For a run about to open its clients (a resumed one may predate the allowlist in force)."""
    refused = disallowed_run_url(request, settings)
    if refused is not None:
        field, url = refused
        raise ServiceURLNotAllowed(f"{field}: {_why(url)}")


def _why(url: str) -> str:
    return (
        f"{url} is not one of the orchestrator's configured services; a run may name only those or "
        "the URLs in ORCHESTRATOR_ALLOWED_SERVICE_URLS (ask the operator to add it)"
    )
