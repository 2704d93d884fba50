"""The configured providers, and which one serves a client's model."""

from __future__ import annotations

from collections.abc import Iterable

from vidgate.config import ProviderConfig
from vidgate.providers.base import Provider
from vidgate.providers.openai import OpenAIVideosProvider


class ProviderRegistry:
    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = {p.name: p for p in providers}

    @classmethod
    def from_configs(cls, configs: Iterable[ProviderConfig]) -> ProviderRegistry:
        return cls(OpenAIVideosProvider(config) for config in configs)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def route(self, model: str) -> Provider | None:
        """The first configured provider (config order is priority) offering ``model``."""
        for provider in self._providers.values():
            if provider.upstream_model(model) is not None:
                return provider
        return None

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
