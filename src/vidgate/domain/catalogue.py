"""The model catalogue: which client model names exist, who serves them, what each can
do, and when a model retires. Checked before a task is accepted, so a request no
provider can carry out never reaches an upstream (and is never silently changed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vidgate.domain.capabilities import Capabilities, Unsupported, unsupported
from vidgate.domain.errors import ModelRetired, UnknownModel, UnsupportedParameter
from vidgate.domain.request import VideoParams


@dataclass(frozen=True, kw_only=True)
class Target:
    """One provider serving a client model, under the upstream's own model id."""

    provider: str
    protocol: str
    model: str
    capabilities: Capabilities


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    name: str
    targets: tuple[Target, ...]
    capabilities: Capabilities | None = None  # the TOML file's table, over the built-in ones
    retires_at: datetime | None = None
    replaced_by: str | None = None

    def capabilities_of(self, target: Target) -> Capabilities:
        return self.capabilities or target.capabilities

    def refusal(self, params: VideoParams, target: Target) -> Unsupported | None:
        return unsupported(params, self.capabilities_of(target))

    def to_json(self) -> dict[str, Any]:
        first = self.targets[0] if self.targets else None
        return {
            "id": self.name,
            "capabilities": self.capabilities_of(first).to_json() if first else None,
            "providers": [
                {
                    "provider": t.provider,
                    "protocol": t.protocol,
                    "upstreamModel": t.model,
                    "capabilities": self.capabilities_of(t).to_json(),
                }
                for t in self.targets
            ],
            "retiresAt": _iso(self.retires_at),
            "replacedBy": self.replaced_by,
        }


class Catalogue:
    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self.entries = {entry.name: entry for entry in entries}

    def names(self) -> list[str]:
        return list(self.entries)

    def check(
        self,
        model: str,
        params: VideoParams,
        *,
        now: datetime,
        field_names: dict[str, str] | None = None,
    ) -> ModelEntry:
        """The model's entry, if it exists, is not retired, and some provider of it can do
        ``params``; else the error a client gets (422). ``field_names`` renames a field in
        the error to the name the client used (``seconds`` for ``durationSeconds``)."""
        entry = self.entries.get(model)
        if entry is None or not entry.targets:
            raise UnknownModel(
                f"Unknown model {model!r}.", details={"model": model, "supported": self.names()}
            )
        if entry.retires_at is not None and now >= entry.retires_at:
            text = f"Model {model!r} was retired on {_iso(entry.retires_at)}."
            if entry.replaced_by:
                text += f" Use {entry.replaced_by!r} instead."
            raise ModelRetired(
                text,
                details={
                    "model": model,
                    "retiredAt": _iso(entry.retires_at),
                    "replacedBy": entry.replaced_by,
                },
            )
        refusals = [entry.refusal(params, target) for target in entry.targets]
        if all(r is not None for r in refusals):
            first = refusals[0]
            assert first is not None
            shown = (field_names or {}).get(first.field, first.field)
            value = first.value
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # "seconds=5", as it was asked for
            raise UnsupportedParameter(
                f"Model {model!r} does not support {shown}={value!r}; "
                f"supported: {first.supported!r}.",
                details={
                    "model": model,
                    "field": shown,
                    "value": first.value,
                    "supported": first.supported,
                },
            )
        return entry

    def can(self, model: str, provider: str, params: VideoParams) -> bool:
        """Whether ``provider`` can do ``params`` for ``model`` (routing skips it if not)."""
        entry = self.entries.get(model)
        if entry is None:
            return True  # not catalogued (a test fake): no restriction
        return any(
            t.provider == provider and entry.refusal(params, t) is None for t in entry.targets
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
