"""The configured providers, and which of them serve a client's model."""

from __future__ import annotations

from collections.abc import Iterable

from vidgate.config import ProviderConfig
from vidgate.providers.base import Provider
from vidgate.providers.openai import OpenAIVideosProvider


class ProviderRegistry:
    def __init__(
        self, providers: Iterable[Provider], *, configs: Iterable[ProviderConfig] = ()
    ) -> None:
        self._providers = {p.name: p for p in providers}
        given = {c.name: c for c in configs}
        # Providers built without a config (test fakes) get the defaults.
        self._configs = {
            name: given.get(name)
            or ProviderConfig(
                name=name, base_url="http://unused", idempotency=provider.honours_idempotency
            )
            for name, provider in self._providers.items()
        }

    @classmethod
    def from_configs(cls, configs: Iterable[ProviderConfig]) -> ProviderRegistry:
        listed = list(configs)
        return cls((OpenAIVideosProvider(c) for c in listed), configs=listed)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def config(self, name: str) -> ProviderConfig:
        return self._configs[name]

    def candidates(self, model: str) -> list[Provider]:
        """Providers offering ``model``, by priority (lower first), then config order."""
        offering = [p for p in self._providers.values() if p.upstream_model(model) is not None]
        return sorted(offering, key=lambda p: self._configs[p.name].priority)

    def route(self, model: str) -> Provider | None:
        """The first choice for ``model``, ignoring load and health."""
        found = self.candidates(model)
        return found[0] if found else None

    def models(self) -> list[str]:
        """Every client model name some provider offers, in config order."""
        seen: dict[str, None] = {}
        for provider in self._providers.values():
            seen.update(dict.fromkeys(provider.models))
        return list(seen)

    def all(self) -> list[Provider]:
        return list(self._providers.values())

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
