"""Orchestrator settings. Service locations and stores use the plain names the whole stack shares
(``GENERATOR_URL``, ``REWARDER_URL``, ``REDIS_URL``, ``DATABASE_URL``, ``ARTIFACTS_DIR``); the
orchestrator's own knobs are ``ORCHESTRATOR_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from raftflow.schemas.jobs import Tracker
from raftflow.settings import CommonSettings, read_token


class OrchestratorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore", populate_by_name=True)

    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    generator_url: str = Field(
        default="http://127.0.0.1:8001", validation_alias="GENERATOR_URL", description="Generator base URL."
    )
    rewarder_url: str = Field(
        default="http://127.0.0.1:8002", validation_alias="REWARDER_URL", description="Rewarder base URL."
    )
    generator_urls: list[str] = Field(
        default_factory=list,
        validation_alias="GENERATOR_URLS",
        description="Several generator replicas (a JSON list), used instead of GENERATOR_URL: sampling is "
        "spread over them and every checkpoint loads into each (docs/orchestrator.md#replicas).",
    )
    rewarder_urls: list[str] = Field(
        default_factory=list,
        validation_alias="REWARDER_URLS",
        description="Several rewarder replicas (a JSON list), used instead of REWARDER_URL.",
    )
    allowed_service_urls: list[str] = Field(
        default_factory=list,
        description="Further service URLs a run body may name (generator_url(s), rewarder_url(s), "
        "gold_rewarder_url, a TGI server), beside the configured GENERATOR_URL(S) and REWARDER_URL(S); "
        "any other URL is refused with a 422, so a caller cannot make the orchestrator send its service "
        "token, prompts or samples elsewhere. Env: a JSON list.",
    )
    service_token: str | None = Field(
        default=None,
        description="Bearer token the orchestrator sends to the generator, rewarder and trainer-side "
        "services (only to the configured and allowed URLs). Default: the orchestrator's own API token.",
    )
    service_token_file: Path | None = Field(
        default=None, description="File holding service_token (a mounted secret); read when it is unset."
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL", description="Trainer queue broker."
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of the run store; default: SQLite file ARTIFACTS_DIR/orchestrator.db.",
    )
    artifacts_dir: Path = Field(
        default=Path("artifacts"),
        validation_alias="ARTIFACTS_DIR",
        description="Where runs write samples, scores, selected sets and checkpoints (shared with the "
        "trainer and generator: they must see the same paths).",
    )
    path_roots: list[Path] = Field(
        default_factory=list,
        description="Directories a run's local paths (policy checkpoint, prompts, eval_prompts) must "
        "resolve inside, after '..' and symlinks; ARTIFACTS_DIR is always allowed, and a policy that is "
        "a hub id (owner/name, no local file of that name) stays allowed. Empty: any path (local use; "
        "a warning at start-up). Env: a JSON list.",
    )
    retry_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a dead generator, rewarder or trainer is retried before the run fails.",
    )
    sample_chunk_prompts: int = Field(
        default=16, ge=1, description="Prompts per generator request (progress is reported per chunk)."
    )
    score_chunk_items: int = Field(default=256, ge=1, description="Items per rewarder request.")
    report_to: list[Tracker] = Field(
        default_factory=list,
        description="Experiment trackers of runs that do not name their own (report_to): a JSON list of "
        "tensorboard, mlflow, wandb, trackio. Offline by default, under ARTIFACTS_DIR/tracking.",
    )
    overlap_scoring: bool = Field(
        default=True,
        description="Score each sample chunk as it arrives, while the next ones are sampled; off: the "
        "score stage starts when sampling ends (the rewards are the same either way).",
    )
    max_k: int = Field(
        default=64,
        ge=1,
        description="Most samples per prompt a run may ask for (k); keep it at or below the generator's "
        "GENERATOR_MAX_N, whose default it mirrors.",
    )
    max_new_tokens: int = Field(
        default=1024,
        ge=1,
        description="Most new tokens per sample a run may ask for; keep it at or below the generator's "
        "GENERATOR_MAX_TOKENS, whose default it mirrors.",
    )
    max_samples_per_iteration: int = Field(
        default=65_536,
        ge=1,
        description="Most samples one iteration may draw (prompts_per_iteration x k).",
    )
    tgi_concurrency: int = Field(default=8, ge=1, description="Parallel requests to a TGI server.")
    request_timeout: float = Field(default=600.0, gt=0, description="Timeout of one HTTP call (seconds).")

    def outbound_token(self) -> str | None:
        """The token sent to the services: ORCHESTRATOR_SERVICE_TOKEN(_FILE), else the API token."""
        return read_token(self.service_token, self.service_token_file) or self.resolved_api_token()

    def allowed_roots(self) -> list[Path]:
        """Where run paths may point: the configured roots plus ARTIFACTS_DIR (runs read their own
        checkpoints from there); empty when no roots are configured (unconfined)."""
        return [*self.path_roots, self.artifacts_dir] if self.path_roots else []

    def run_dir(self, run_id: str) -> Path:
        """Where a run's iterations write their files (``iter-NNN/``) and its checkpoints."""
        return self.artifacts_dir.resolve() / "runs" / run_id

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.artifacts_dir / 'orchestrator.db').resolve()}"
