"""Settings of the upstream simulator: one frozen value object, readable from the environment."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "VIDGATE_SIM_"

# Drawn from one roll per API request, in this order, so their sum must stay <= 1.
# hostile_rate only applies to `GET /videos/{id}`; on other routes its share of the roll
# means no fault, so every rate is exactly the share of the requests it can apply to.
REQUEST_FAULT_RATES = (
    "error_500_rate",
    "error_503_rate",
    "error_429_rate",
    "timeout_rate",
    "garbage_rate",
    "hostile_rate",
)
# Drawn from one roll per created job.
JOB_FAULT_RATES = ("job_fail_rate", "job_stuck_rate")

# The fields `POST /_sim/faults` may change while the simulator runs. job_seconds is here too
# because benchmarks like to speed jobs up or slow them down without a restart; it only
# affects jobs created afterwards.
RUNTIME_FIELDS = (
    *REQUEST_FAULT_RATES,
    *JOB_FAULT_RATES,
    "retry_after_seconds",
    "retry_after_503_seconds",
    "hang_seconds",
    "latency_ms",
    "job_seconds",
)


def normalise_prefix(prefix: str) -> str:
    """ "/sora/v1/", "sora/v1" -> "/sora/v1"; "/" and "" -> "" (API at the origin root)."""
    stripped = prefix.strip().strip("/")
    return f"/{stripped}" if stripped else ""


# The upstream protocols the simulator speaks (`--protocol`), and where each one's API
# sits on the simulator's origin unless `--prefix` says otherwise: the path of the
# vendor's documented base URL, so a provider's `base_url` is origin + prefix.
PROTOCOL_PREFIXES = {
    "openai-videos": "/v1",
    "gemini-veo": "/v1beta",
    "seedance": "/api/v3",
    "kling": "",
    "runway": "",
    "minimax": "",
}


def default_prefix(protocol: str) -> str:
    return PROTOCOL_PREFIXES.get(protocol, "")


@dataclass(frozen=True, kw_only=True, slots=True)
class SimConfig:
    """How the simulator behaves. Rates are probabilities in 0..1; times are seconds."""

    protocol: str = "openai-videos"
    job_seconds: float = 10.0
    prefix: str = "/v1"
    url_field: bool = False
    api_key: str | None = None
    expires_after_seconds: float = 3600.0

    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    error_429_rate: float = 0.0
    retry_after_seconds: float = 1.0
    # Injected 503s carry Retry-After (and retry-after-ms) only when this is above 0.
    retry_after_503_seconds: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    garbage_rate: float = 0.0
    # `GET /videos/{id}` answered with a corrupted job object (see hostile.py).
    hostile_rate: float = 0.0
    job_fail_rate: float = 0.0
    job_stuck_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        # A frozen dataclass can still normalise itself through object.__setattr__.
        if self.protocol not in PROTOCOL_PREFIXES:
            raise ValueError(
                f"unknown protocol {self.protocol!r}; one of {', '.join(PROTOCOL_PREFIXES)}"
            )
        object.__setattr__(self, "prefix", normalise_prefix(self.prefix))
        if self.api_key == "":
            object.__setattr__(self, "api_key", None)
        for name in (*REQUEST_FAULT_RATES, *JOB_FAULT_RATES):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for group in (REQUEST_FAULT_RATES, JOB_FAULT_RATES):
            total = sum(getattr(self, name) for name in group)
            if total > 1.0 + 1e-9:
                raise ValueError(f"{' + '.join(group)} must not exceed 1, got {total}")
        for name in (
            "job_seconds",
            "expires_after_seconds",
            "retry_after_seconds",
            "retry_after_503_seconds",
            "hang_seconds",
            "latency_ms",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimConfig:
        """Defaults overridden by `VIDGATE_SIM_<FIELD>` variables (VIDGATE_SIM_JOB_SECONDS=2)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        protocol = env.get(ENV_PREFIX + "PROTOCOL")
        if protocol and ENV_PREFIX + "PREFIX" not in env:
            values["prefix"] = default_prefix(protocol)
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is None:
                continue
            try:
                values[field.name] = _PARSERS[field.name](raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{field.name.upper()}: {exc}") from exc
        return cls(**values)

    def runtime_settings(self) -> dict[str, float]:
        """The fields `/_sim/faults` reads and writes, by their field names."""
        return {name: float(getattr(self, name)) for name in RUNTIME_FIELDS}


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {raw!r}")


def _parse_optional_int(raw: str) -> int | None:
    return int(raw) if raw.strip() else None


def _parse_optional_str(raw: str) -> str | None:
    return raw or None


_PARSERS: dict[str, Callable[[str], Any]] = {
    field.name: float for field in dataclasses.fields(SimConfig) if field.type == "float"
}
_PARSERS.update(
    protocol=str,
    prefix=str,
    url_field=_parse_bool,
    api_key=_parse_optional_str,
    seed=_parse_optional_int,
)
