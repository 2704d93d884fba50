"""Settings: one pydantic-settings class (env prefix ``VIDGATE_``) plus a TOML file for providers.

The TOML file named by ``VIDGATE_CONFIG`` holds what does not fit in environment
variables: the list of upstream providers. Secrets stay out of it where possible: a
provider's ``api_key_env`` names the environment variable that holds its key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODELS = {
    "sora_video2": "sora-2",
    "sora_video2_pro": "sora-2-pro",
    "sora-2": "sora-2",
    "sora-2-pro": "sora-2-pro",
}


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


class ProviderConfig(BaseModel):
    """One upstream video API speaking the ``/v1/videos`` convention."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["openai"] = "openai"
    base_url: str  # with any path prefix, e.g. http://host:8000/sora/v1
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    # client model -> upstream model, e.g. {"sora_video2": "sora-2"}
    models: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MODELS))
    # Whether the upstream returns the same job for a repeated Idempotency-Key.
    idempotency: bool = True
    # How a submission whose outcome is unknown (a crash or a timeout mid-create) is
    # recovered, see docs/RELIABILITY.md: "resend" the same Idempotency-Key (needs
    # idempotency = true), "reconcile" with the upstream's list of recent jobs, or "fail"
    # the task with SUBMISSION_UNCERTAIN. Default: resend if idempotency, else fail.
    recovery: Literal["resend", "reconcile", "fail"] | None = None
    # Routing: lower priority numbers are tried first; among equals, by weight.
    priority: int = 0
    weight: float = Field(default=1.0, gt=0)
    max_jobs: int | None = Field(default=None, ge=1)  # upstream jobs running at once
    requests_per_second: float | None = Field(default=None, gt=0)
    # Circuit breaker: after this many failures in a row, stop sending for a while.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=10.0, gt=0)
    # Where videoUrl comes from: "auto" uses the job's own `url` when it has one and
    # vidgate's streaming route otherwise; "url" requires it; "proxy" always streams.
    content: Literal["auto", "url", "proxy"] = "auto"
    max_concurrency: int = Field(default=32, ge=1, le=10_000)
    # Kept below the lease (30 s by default) so a step ends before its lease does.
    timeout_seconds: float = Field(default=20.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _recovery(self) -> ProviderConfig:
        if self.recovery is None:
            object.__setattr__(self, "recovery", "resend" if self.idempotency else "fail")
        elif self.recovery == "resend" and not self.idempotency:
            raise ValueError('recovery = "resend" needs an upstream that honours idempotency')
        return self

    def secret(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env)
        return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDGATE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/vidgate.db"
    migrate_on_start: bool = True  # false: run `vidgate migrate` yourself before starting
    db_pool_size: int = Field(default=10, ge=1)  # PostgreSQL connections per process
    db_max_overflow: int = Field(default=10, ge=0)  # ... plus this many in bursts
    redis_url: str | None = None  # set: events cross processes through Redis
    event_poll_seconds: float = Field(default=1.0, gt=0)  # WebSocket catch-up if a wake-up is lost
    config: Path | None = None  # TOML file with [[providers]]
    public_url: str | None = None  # how browsers reach this server; default from --host/--port
    sim_job_seconds: float = Field(default=10.0, gt=0)
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    lease_seconds: float = Field(default=30.0, ge=2)
    task_deadline_seconds: float = Field(default=1800.0, gt=0)
    max_in_flight: int = Field(default=256, ge=1)
    drain_seconds: float = Field(default=10.0, ge=0)  # graceful shutdown: finish steps
    default_model: str = "sora_video2"
    providers: list[ProviderConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_providers(self) -> Settings:
        names = [p.name for p in self.providers]
        if len(names) != len(set(names)):
            raise ValueError("provider names must be unique")
        return self

    @property
    def demo_mode(self) -> bool:
        """No provider configured: vidgate runs its simulator in-process."""
        return not self.providers


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, plus providers from the TOML file if one is named."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.config is None or settings.providers:
        return settings
    try:
        data = tomllib.loads(settings.config.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"VIDGATE_CONFIG names {settings.config}, which does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{settings.config} is not valid TOML: {exc}") from exc
    try:
        return settings.model_copy(
            update={"providers": [ProviderConfig(**p) for p in data.get("providers", [])]}
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{settings.config}: invalid provider: {exc}") from exc
