"""Settings shared by every raftflow process.

Each service has its own pydantic-settings class with its own env prefix (``GENERATOR_``,
``REWARDER_``, ...) that inherits from :class:`CommonSettings`. The fields below are read from the
same, un-prefixed ``RAFTFLOW_*`` variables in every service, so one ``.env`` can configure a whole
stack. Command-line flags are passed as init kwargs and win over the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> str:
    """A fixed env var name for a shared field, whatever the subclass's prefix.

    ``populate_by_name`` keeps the field name usable as an init kwarg (the CLI path).
    """
    return name


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
        description="Bearer token required on mutating endpoints; unset means auth is off (local use).",
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
    trust_remote_code: bool = Field(
        default=False,
        description="Allow model repos to run their own Python code. Off unless you trust the source.",
        validation_alias=_env("RAFTFLOW_TRUST_REMOTE_CODE"),
    )

    def resolved_api_token(self) -> str | None:
        """The token in force: the explicit value, else the secret file's content, else None."""
        if self.api_token:
            return self.api_token
        if self.api_token_file is not None:
            return self.api_token_file.read_text().strip() or None
        return None
