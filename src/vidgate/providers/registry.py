"""The configured providers, and which of them serve a client's model.

``ProviderRegistry`` is the ``ProviderDirectory`` the engine and the use cases are given:
it alone knows the config and the adapter modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from vidgate.config import ModelConfig, ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.catalogue import Catalogue, ModelEntry, Target
from vidgate.providers.base import Binding, Provider, ProviderPolicy

# One adapter module per protocol, imported only when a provider of that kind is configured.
ADAPTERS = {
    "openai-videos": "vidgate.providers.openai:OpenAIVideosProvider",
    "gemini-veo": "vidgate.providers.veo:VeoProvider",
    "seedance": "vidgate.providers.seedance:SeedanceProvider",
    "kling": "vidgate.providers.kling:KlingProvider",
    "runway": "vidgate.providers.runway:RunwayProvider",
    "minimax": "vidgate.providers.minimax:MiniMaxProvider",
}


def build(config: ProviderConfig, *, allow_private_images: bool = False) -> Provider:
    """The adapter for ``config.kind``, built from its config.

    An adapter that downloads input images itself (``fetches_images``: Veo takes them
    inline) checks their addresses as vidgate checks ``inputReference``, so it is told
    whether private addresses are allowed (VIDGATE_INPUT_REFERENCE_ALLOW_PRIVATE).
    """
    module_name, _, class_name = ADAPTERS[config.kind].partition(":")
    adapter: Any = getattr(importlib.import_module(module_name), class_name)
    if getattr(adapter, "fetches_images", False):
        built: Provider = adapter(config, allow_private_images=allow_private_images)
    else:
        built = adapter(config)
    return built


class ProviderRegistry:
    def __init__(
        self,
        providers: Iterable[Provider],
        *,
        configs: Iterable[ProviderConfig] = (),
        models: Mapping[str, ModelConfig] | None = None,
    ) -> None:
        self._providers = {p.name: p for p in providers}
        # Providers rebuilt from attempts' bindings (config edited or provider removed).
        self._retired: dict[tuple[str, str, str, str | None], Provider] = {}
        given = {c.name: c for c in configs}
        # Providers built without a config (test fakes) get the defaults.
        self._configs = {
            name: given.get(name)
            or ProviderConfig(
                name=name, base_url="http://unused", idempotency=provider.features.idempotency_key
            )
            for name, provider in self._providers.items()
        }
        self._policies: dict[str, ProviderPolicy] = {}
        self.catalogue = self._catalogue(models or {})
        self.allow_private_images = False

    @classmethod
    def from_configs(
        cls,
        configs: Iterable[ProviderConfig],
        models: Mapping[str, ModelConfig] | None = None,
        *,
        allow_private_images: bool = False,
    ) -> ProviderRegistry:
        listed = list(configs)
        built = [build(c, allow_private_images=allow_private_images) for c in listed]
        registry = cls(built, configs=listed, models=models)
        registry.allow_private_images = allow_private_images
        return registry

    def _catalogue(self, models: Mapping[str, ModelConfig]) -> Catalogue:
        """Every client model some provider offers (config order), with its targets, the
        TOML file's capability table if it has one, and its retirement."""
        names = dict.fromkeys(self.models())
        entries = []
        for name in names:
            configured = models.get(name)
            targets = tuple(
                Target(
                    provider=p.name,
                    protocol=p.kind,
                    model=upstream,
                    capabilities=p.capabilities(upstream),
                )
                for p in self.candidates(name)
                if (upstream := p.upstream_model(name)) is not None
            )
            entries.append(
                ModelEntry(
                    name=name,
                    targets=targets,
                    capabilities=Capabilities.from_json(configured.capabilities)
                    if configured is not None and configured.capabilities is not None
                    else None,
                    retires_at=configured.retires_at if configured else None,
                    replaced_by=configured.replaced_by if configured else None,
                )
            )
        return Catalogue(entries)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def resolve(self, name: str, binding: dict[str, object] | None) -> Provider | None:
        """The provider an attempt was bound to: the configured one of that name while it
        still speaks the same protocol at the same place, else one rebuilt from the
        binding with the credentials still configured under its name (None if none)."""
        configured = self._providers.get(name)
        if binding is None:
            return configured
        bound = Binding.from_json(binding)
        if configured is not None and (
            configured.kind == bound.protocol
            and configured.base_url.rstrip("/") == bound.base_url.rstrip("/")
        ):
            return configured
        key = (bound.provider, bound.protocol, bound.base_url, bound.credential)
        if key in self._retired:
            return self._retired[key]
        fields = ProviderConfig.credential_fields(bound.credential)
        if bound.credential and not fields:
            return None  # an inline secret that is gone with its config
        try:
            config = ProviderConfig(
                name=bound.provider or name,
                kind=bound.protocol,
                base_url=bound.base_url,
                models={bound.model: bound.model},
                **fields,
            )
        except ValueError:
            return None
        provider = build(config, allow_private_images=self.allow_private_images)
        self._retired[key] = provider
        self._configs.setdefault(provider.name, config)
        return provider

    def policy(self, name: str) -> ProviderPolicy:
        policy = self._policies.get(name)
        if policy is None:  # a provider's config never changes once it is known
            policy = self._policies[name] = _policy(self._configs[name])
        return policy

    def candidates(self, model: str) -> list[Provider]:
        """Providers offering ``model``, by priority (lower first), then config order."""
        offering = [p for p in self._providers.values() if p.upstream_model(model) is not None]
        return sorted(offering, key=lambda p: self._configs[p.name].priority)

    def models(self) -> list[str]:
        """Every client model name some provider offers, in config order."""
        seen: dict[str, None] = {}
        for provider in self._providers.values():
            seen.update(dict.fromkeys(provider.models))
        return list(seen)

    def all(self) -> list[Provider]:
        return list(self._providers.values())

    async def aclose(self) -> None:
        for provider in [*self._providers.values(), *self._retired.values()]:
            await provider.aclose()


def _policy(config: ProviderConfig) -> ProviderPolicy:
    return ProviderPolicy(
        priority=config.priority,
        weight=config.weight,
        max_jobs=config.max_jobs,
        requests_per_second=config.requests_per_second,
        breaker_failures=config.breaker_failures,
        breaker_cooldown_seconds=config.breaker_cooldown_seconds,
        # Always set once the config is validated: resend if idempotent, else fail.
        recovery=config.recovery or "fail",
    )
