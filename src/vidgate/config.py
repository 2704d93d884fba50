"""Settings: one pydantic-settings class (env prefix ``VIDGATE_``) plus a TOML file for providers.

The TOML file named by ``VIDGATE_CONFIG`` holds what does not fit in environment
variables: the list of upstream providers. Secrets stay out of it where possible: a
provider's ``api_key_env`` names the environment variable that holds its key.
"""

from __future__ import annotations

import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODELS = {
    "sora_video2": "sora-2",
    "sora_video2_pro": "sora-2-pro",
    "sora-2": "sora-2",
    "sora-2-pro": "sora-2-pro",
}


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


Kind = Literal["openai-videos", "gemini-veo", "seedance", "kling", "runway", "minimax"]
KINDS: tuple[str, ...] = ("openai-videos", "gemini-veo", "seedance", "kling", "runway", "minimax")


SECRETS = ("api_key", "access_key", "secret_key")


class ProviderConfig(BaseModel):
    """One upstream video API; ``kind`` names its protocol (docs/PROVIDERS.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Kind = "openai-videos"
    # The API root as the vendor documents it, with any path prefix kept, e.g.
    # http://host:8000/sora/v1 or https://generativelanguage.googleapis.com/v1beta.
    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None  # the environment variable holding the key
    api_key_file: Path | None = None  # or a file holding it (Docker / Kubernetes secrets)
    # Kling signs a JWT with an access key and a secret key, each given the same three ways.
    access_key: SecretStr | None = None
    access_key_env: str | None = None
    access_key_file: Path | None = None
    secret_key: SecretStr | None = None
    secret_key_env: str | None = None
    secret_key_file: Path | None = None
    # gemini-veo: "gemini" (API key) or "vertex" (service account, project, location).
    surface: Literal["gemini", "vertex"] = "gemini"
    project: str | None = None
    location: str | None = None
    service_account_file: Path | None = None
    api_version: str | None = None  # runway: X-Runway-Version
    # client model -> upstream model, e.g. {"sora_video2": "sora-2"}; empty: the kind's
    # built-in catalogue (docs/PROVIDERS.md).
    models: dict[str, str] = Field(default_factory=dict)
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
    # vidgate's streaming route otherwise; "url" requires it; "proxy" always streams;
    # "mirror" downloads the video into VIDGATE_MEDIA_DIR at completion and serves it
    # from there (it outlives the upstream's expiry).
    content: Literal["auto", "url", "proxy", "mirror"] = "auto"
    max_concurrency: int = Field(default=32, ge=1, le=10_000)
    # Kept below the lease (30 s by default) so a step ends before its lease does.
    timeout_seconds: float = Field(default=20.0, gt=0)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_alias(cls, value: object) -> object:
        return "openai-videos" if value == "openai" else value  # the name before 0.2

    @model_validator(mode="after")
    def _default_models(self) -> ProviderConfig:
        if not self.models and self.kind == "openai-videos":
            object.__setattr__(self, "models", dict(DEFAULT_MODELS))
        return self

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

    def secret(
        self, which: Literal["api_key", "access_key", "secret_key"] = "api_key"
    ) -> str | None:
        """The secret named ``which``, from the value, its environment variable or its file."""
        value: SecretStr | None = getattr(self, which)
        env: str | None = getattr(self, f"{which}_env")
        file: Path | None = getattr(self, f"{which}_file")
        if value is not None:
            return value.get_secret_value()
        if env:
            return os.environ.get(env)
        if file is not None:
            return _read_secret(file)
        return None

    def credential_name(self) -> str | None:
        """Where the secrets are configured (never the secrets themselves), for the
        attempt's binding: ``api_key=env:NAME``, ``access_key=env:A;secret_key=file:/p``,
        ``service_account=file:/p``; ``inline`` for a value written in the file."""
        refs = []
        for which in SECRETS:
            env = getattr(self, f"{which}_env")
            file = getattr(self, f"{which}_file")
            if env:
                refs.append(f"{which}=env:{env}")
            elif file is not None:
                refs.append(f"{which}=file:{file}")
            elif getattr(self, which) is not None:
                refs.append(f"{which}=inline")
        if self.service_account_file is not None:
            refs.append(f"service_account=file:{self.service_account_file}")
        return ";".join(refs) or None

    @staticmethod
    def credential_fields(credential: str | None) -> dict[str, Any]:
        """The config fields a ``credential_name()`` stands for (inline values are lost)."""
        fields: dict[str, Any] = {}
        for item in (credential or "").split(";"):
            which, _, where = item.partition("=")
            how, _, value = where.partition(":")
            if which == "service_account" and how == "file":
                fields["service_account_file"] = Path(value)
            elif which in SECRETS and how == "env":
                fields[f"{which}_env"] = value
            elif which in SECRETS and how == "file":
                fields[f"{which}_file"] = Path(value)
        return fields


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc.strerror}") from exc


class ModelConfig(BaseModel):
    """One client model in the catalogue (``[models."NAME"]``): what it can do, and when
    it retires. Which providers serve it comes from their ``models`` tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retires_at: datetime | None = None
    replaced_by: str | None = None
    # Overrides the built-in capability table of its providers' kinds: durations,
    # duration_range, aspect_ratios, resolutions, image_roles, max_images, audio,
    # negative_prompt, seed.
    capabilities: dict[str, Any] | None = None

    @field_validator("retires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Limits(BaseModel):
    """Per-user limits; None means no limit. Set for everyone (``[limits]``), per plan
    (``[plans.NAME]``) or per user (``[users."ID"]``); the most specific setting wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active_tasks: int | None = Field(default=None, ge=1)  # QUEUED + SUBMITTED + PROCESSING
    tasks_per_day: int | None = Field(default=None, ge=1)  # created in the last 24 h
    requests_per_minute: int | None = Field(default=None, ge=1)  # authenticated API calls

    def over(self, more: Limits) -> Limits:
        """These limits with the fields ``more`` sets explicitly replaced."""
        return self.model_copy(update={k: getattr(more, k) for k in more.model_fields_set})


class UserLimits(Limits):
    plan: str | None = None


def _comma_list(value: object) -> object:
    """``a,b`` or a JSON list, from an environment variable."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIDGATE_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = "sqlite+aiosqlite:///./data/vidgate.db"
    migrate_on_start: bool = True  # false: run `vidgate migrate` yourself before starting
    db_pool_size: int = Field(default=10, ge=1)  # PostgreSQL connections per process
    db_max_overflow: int = Field(default=10, ge=0)  # ... plus this many in bursts
    redis_url: str | None = None  # set: events cross processes through Redis
    event_poll_seconds: float = Field(default=1.0, gt=0)  # WebSocket catch-up if a wake-up is lost
    sse_ping_seconds: float = Field(default=15.0, gt=0)  # `: ping` on idle SSE streams
    config: Path | None = None  # TOML file with [[providers]]
    public_url: str | None = None  # how browsers reach this server; default from --host/--port
    sim_job_seconds: float = Field(default=10.0, gt=0)
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    # GET /metrics (Prometheus text format) on every role, without authentication: keep it
    # off the public internet (README "Metrics"). PROMETHEUS_MULTIPROC_DIR: see there too.
    metrics: bool = True
    lease_seconds: float = Field(default=30.0, ge=2)
    task_deadline_seconds: float = Field(default=1800.0, gt=0)
    max_in_flight: int = Field(default=256, ge=1)
    # Transient failures in a row a submission survives before its task fails
    # (UPSTREAM_UNAVAILABLE) or moves to another provider.
    submit_retries: int = Field(default=5, ge=1, le=50)
    drain_seconds: float = Field(default=10.0, ge=0)  # graceful shutdown: finish steps
    default_model: str = "sora_video2"
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: dict[str, ModelConfig] = Field(default_factory=dict)  # the catalogue
    # content = "auto": a result that expires sooner than this is mirrored at completion.
    mirror_before_seconds: float = Field(default=86400.0, ge=0)

    # Authentication (docs/SECURITY.md). "none" is for development: one local user, and
    # `serve` refuses a non-loopback address unless allow_remote_without_auth is set.
    auth_mode: Literal["none", "apikey", "jwt"] = "none"
    allow_remote_without_auth: bool = False
    admin_users: CommaList = Field(default_factory=list)  # user ids with the admin role
    jwt_secret: SecretStr | None = None  # HS256
    jwt_secret_file: Path | None = None
    jwt_public_key_file: Path | None = None  # RS256, PEM
    jwt_jwks_file: Path | None = None  # a JSON Web Key Set, keys chosen by `kid`
    jwt_jwks_url: str | None = None  # ... or the identity provider's JWKS endpoint
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_admin_role: str = "vidgate:admin"  # in the token's `roles` list or `scope` string
    jwt_leeway_seconds: float = Field(default=30.0, ge=0)

    # Per-user limits (plans and users come from the TOML file).
    limits: Limits = Field(default_factory=Limits)
    plans: dict[str, Limits] = Field(default_factory=dict)
    users: dict[str, UserLimits] = Field(default_factory=dict)

    # Mirrored videos (providers with content = "mirror", and demo mode).
    media_dir: Path = Path("./data/media")
    max_video_bytes: int = Field(default=1024**3, ge=1)

    # Create: how long an Idempotency-Key is remembered (at least the IETF draft's 24 h).
    idempotency_ttl_hours: float = Field(default=24.0, ge=24)
    # task_events rows older than this are deleted by the engine; resuming (WebSocket
    # afterEventId, SSE Last-Event-ID) from before what is left falls back to a snapshot.
    event_retention_days: float = Field(default=7.0, gt=0)

    # Hostile input.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    input_reference_allow_private: bool = False  # allow loopback / private / link-local
    cors_origins: CommaList = Field(default_factory=list)  # e.g. https://app.example.com

    # Outbound webhooks (docs/API.md "Webhooks"). allow_private: loopback / private
    # receivers, for self-hosted setups; the retry delays are small in tests.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    webhook_log_days: float = Field(default=30.0, gt=0)  # finished deliveries kept this long

    @model_validator(mode="after")
    def _unique_providers(self) -> Settings:
        names = [p.name for p in self.providers]
        if len(names) != len(set(names)):
            raise ValueError("provider names must be unique")
        return self

    @model_validator(mode="after")
    def _plans_exist(self) -> Settings:
        for user, limits in self.users.items():
            if limits.plan is not None and limits.plan not in self.plans:
                raise ValueError(f"user {user!r} names the unknown plan {limits.plan!r}")
        return self

    def limits_for(self, user_id: str) -> Limits:
        """The limits that apply to ``user_id``: everyone's, then the plan's, then the user's."""
        user = self.users.get(user_id)
        if user is None:
            return self.limits
        limits = self.limits
        if user.plan is not None:
            limits = limits.over(self.plans[user.plan])
        mine = Limits(**{k: getattr(user, k) for k in user.model_fields_set if k != "plan"})
        return limits.over(mine)

    def jwt_key_material(self) -> str | None:
        """The HS256 secret, from the setting or its file (never logged)."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        if self.jwt_secret_file is not None:
            return _read_secret(self.jwt_secret_file)
        return None

    @property
    def demo_mode(self) -> bool:
        """No provider configured: vidgate runs its simulator in-process."""
        return not self.providers


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, plus providers from the TOML file if one is named."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.config is None:
        return settings
    try:
        data = tomllib.loads(settings.config.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"VIDGATE_CONFIG names {settings.config}, which does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{settings.config} is not valid TOML: {exc}") from exc
    try:
        providers = [ProviderConfig(**p) for p in data.get("providers", [])]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{settings.config}: invalid provider: {exc}") from exc
    try:
        update: dict[str, Any] = {"providers": settings.providers or providers}
        if "limits" in data:
            update["limits"] = settings.limits.over(Limits(**data["limits"]))
        update["plans"] = {k: Limits(**v) for k, v in data.get("plans", {}).items()}
        update["models"] = {k: ModelConfig(**v) for k, v in data.get("models", {}).items()}
        update["users"] = {k: UserLimits(**v) for k, v in data.get("users", {}).items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{settings.config}: {exc}") from exc
    try:
        return Settings.model_validate({**settings.model_dump(), **update})
    except ValueError as exc:
        raise ConfigError(f"{settings.config}: {exc}") from exc
