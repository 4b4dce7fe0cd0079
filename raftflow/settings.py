"""Settings shared by every raftflow process.

Each service has its own pydantic-settings class with its own env prefix (``GENERATOR_``,
``REWARDER_``, ...) that inherits from :class:`CommonSettings`. The fields below are read from the
same, un-prefixed ``RAFTFLOW_*`` variables in every service, so one ``.env`` can configure a whole
stack. Command-line flags are passed as init kwargs and win over the environment.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> str:
    """A fixed env var name for a shared field, whatever the subclass's prefix.

    ``populate_by_name`` keeps the field name usable as an init kwarg (the CLI path).
    """
    return name


log = logging.getLogger(__name__)


def read_token(value: str | None, file: Path | None) -> str | None:
    """A token setting and its ``_FILE`` form (a mounted secret): the value, else the file's content,
    else None (an empty file counts as none)."""
    if value:
        return value
    if file is not None:
        return file.read_text().strip() or None
    return None


class AuthNotConfigured(RuntimeError):
    """An HTTP service was started with no API token and without auth explicitly turned off.

    Auth must never be off by accident (a forgotten secret mount, an empty token file): a service
    bound to a reachable address would then take training and load requests from anyone.
    """


class CommonSettings(BaseSettings):
    """Fields every service understands. Subclasses set ``env_prefix`` for their own fields."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field(
        default="127.0.0.1",
        description="Bind address. Loopback by default; compose/k8s set 0.0.0.0 explicitly.",
    )
    log_level: str = Field(default="info", validation_alias=_env("RAFTFLOW_LOG_LEVEL"))
    api_token: str | None = Field(
        default=None,
        description="Bearer token required on mutating endpoints. Unset (and no token file): the "
        "HTTP services refuse to start unless RAFTFLOW_ALLOW_NO_AUTH is set.",
        validation_alias=_env("RAFTFLOW_API_TOKEN"),
    )
    api_token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token (a mounted secret); read when api_token is unset.",
        validation_alias=_env("RAFTFLOW_API_TOKEN_FILE"),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Where models run: auto picks CUDA when present, else CPU.",
        validation_alias=_env("RAFTFLOW_DEVICE"),
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch intra-op threads; set 1 when several services share a small CPU box.",
        validation_alias=_env("RAFTFLOW_TORCH_THREADS"),
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (413 above it), so a huge client cannot exhaust memory.",
        validation_alias=_env("RAFTFLOW_MAX_BODY_BYTES"),
    )
    body_read_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a client has to send a whole request body once the server reads it; a "
        "stalled or trickling body gets 408 and the connection is closed, so slow clients cannot pile up.",
        validation_alias=_env("RAFTFLOW_BODY_READ_TIMEOUT"),
    )
    header_read_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection has to deliver a complete request line and headers (from "
        "opening, or from the previous response); past it the connection is closed, as is one still "
        "sending the unread body of a request already answered.",
        validation_alias=_env("RAFTFLOW_HEADER_READ_TIMEOUT"),
    )
    keep_alive_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds an idle keep-alive connection stays open after a response (uvicorn's "
        "timeout_keep_alive). Behind a load balancer, set it above the balancer's idle timeout.",
        validation_alias=_env("RAFTFLOW_KEEP_ALIVE_TIMEOUT"),
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections (idle ones included) or requests in flight above which new "
        "requests get 503 (uvicorn's limit_concurrency); bounds memory under a connection flood.",
        validation_alias=_env("RAFTFLOW_MAX_CONNECTIONS"),
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest request line plus headers; above it the request gets 400 and the "
        "connection is closed, before the rest is read.",
        validation_alias=_env("RAFTFLOW_MAX_HEADER_BYTES"),
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow model repos to run their own Python code. Off unless you trust the source.",
        validation_alias=_env("RAFTFLOW_TRUST_REMOTE_CODE"),
    )
    allow_no_auth: bool = Field(
        default=False,
        description="Run the HTTP services with auth off when no token is configured (local use on "
        "loopback only). Without it a service with no token refuses to start.",
        validation_alias=_env("RAFTFLOW_ALLOW_NO_AUTH"),
    )

    def resolved_api_token(self) -> str | None:
        """The token in force: the explicit value, else the secret file's content, else None."""
        return read_token(self.api_token, self.api_token_file)

    def service_api_token(self) -> str | None:
        """The token an HTTP service enforces. Raises :class:`AuthNotConfigured` when there is none
        and ``RAFTFLOW_ALLOW_NO_AUTH`` is not set, or when the token file is empty: auth is off only
        when explicitly asked for, never because a secret was forgotten or mounted empty."""
        token = self.resolved_api_token()
        if token is not None:
            return token
        if self.api_token_file is not None:  # a token was meant to be there: never fall back to off
            raise AuthNotConfigured(
                f"refusing to start: the API token file {self.api_token_file} (RAFTFLOW_API_TOKEN_FILE) "
                "is empty"
            )
        if not self.allow_no_auth:
            raise AuthNotConfigured(
                "refusing to start without an API token: neither RAFTFLOW_API_TOKEN nor "
                "RAFTFLOW_API_TOKEN_FILE is set. Set one (raftflow up and the demo generate one per "
                "run), or set RAFTFLOW_ALLOW_NO_AUTH=1 to run with auth off (local use only)."
            )
        log.warning(
            "AUTH IS OFF (RAFTFLOW_ALLOW_NO_AUTH): every endpoint, loading and training included, is "
            "open to anyone who can reach %s; use this on loopback only",
            self.host,
        )
        return None
