"""Routing: which provider a task goes to, and whether a provider may be called now.

Providers are chosen by health (the circuit breaker), by what they can do for the task
(the catalogue), untried ones first, by priority, and among equal priorities at random
by weight. Each provider has one gate per process: its concurrency and request-rate
limits and its breaker (``vidgate.engine.limits``).
"""

from __future__ import annotations

import functools
import random

from vidgate.domain.models import Attempt, AttemptState, Task
from vidgate.engine.config import EngineConfig
from vidgate.engine.limits import BreakerState, CircuitBreaker, ProviderGate
from vidgate.engine.memory import ProcessMemory
from vidgate.engine.meter import NO_METER, EngineMeter
from vidgate.providers.base import JobRef, JobView, Provider, ProviderDirectory, ProviderPolicy

CLOSED = frozenset({AttemptState.FINISHED, AttemptState.FAILED, AttemptState.UNKNOWN})


class Router:
    def __init__(
        self,
        *,
        providers: ProviderDirectory,
        config: EngineConfig,
        memory: ProcessMemory,
        meter: EngineMeter = NO_METER,
    ) -> None:
        self.providers = providers
        self.config = config
        self.memory = memory
        self.meter = meter
        for provider in providers.all():
            memory.gates[provider.name] = self._new_gate(provider)

    def gate(self, provider: Provider) -> ProviderGate:
        gate = self.memory.gates.get(provider.name)
        if gate is None:  # a provider rebuilt from a binding
            gate = self.memory.gates[provider.name] = self._new_gate(provider)
        return gate

    def _new_gate(self, provider: Provider) -> ProviderGate:
        policy = self.policy(provider)
        self.meter.breaker_state(provider.name, BreakerState.CLOSED)
        return ProviderGate(
            provider.name,
            concurrency=provider.max_concurrency,
            rate=policy.requests_per_second,
            breaker=CircuitBreaker(
                provider.name,
                failures=policy.breaker_failures,
                cooldown=policy.breaker_cooldown_seconds,
                on_change=functools.partial(self.meter.breaker_state, provider.name),
            ),
        )

    def policy(self, provider: Provider) -> ProviderPolicy:
        return self.providers.policy(provider.name)

    def provider_of(self, attempt: Attempt) -> Provider | None:
        """The provider the attempt is bound to, even if its config changed since."""
        return self.providers.resolve(attempt.provider, attempt.binding)

    def offered(self, model: str) -> bool:
        """Whether any configured provider offers ``model`` at all."""
        return bool(self.providers.candidates(model))

    def preference(self, task: Task) -> list[Provider]:
        """Healthy providers, untried ones first, by priority, then by weight."""
        tried = {a.provider for a in task.attempts if a.state in CLOSED}
        healthy = [
            p
            for p in self.providers.candidates(task.model)
            if self.gate(p).breaker.available()
            and self.providers.catalogue.can(task.model, p.name, task.params)
        ]
        ordered: list[Provider] = []
        for group in (
            [p for p in healthy if p.name not in tried],
            [p for p in healthy if p.name in tried],
        ):
            by_priority: dict[int, list[Provider]] = {}
            for provider in group:
                by_priority.setdefault(self.policy(provider).priority, []).append(provider)
            for priority in sorted(by_priority):
                ordered += self._weighted_order(by_priority[priority])
        return ordered

    def _weighted_order(self, group: list[Provider]) -> list[Provider]:
        """``group`` in a random order where heavier providers tend to come first."""
        rest = list(group)
        ordered = []
        while rest:
            weights = [self.policy(p).weight for p in rest]
            pick = random.choices(rest, weights=weights)[0]
            ordered.append(pick)
            rest.remove(pick)
        return ordered

    def alternative(self, task: Task, provider: Provider) -> bool:
        """Whether another healthy provider could take this task now."""
        if task.attempt >= self.config.max_attempts:
            return False
        others = [p for p in self.providers.candidates(task.model) if p.name != provider.name]
        return any(self.gate(p).breaker.available() for p in others)


def job_ref(attempt: Attempt, job: JobView | None = None) -> JobRef:
    """How to address the attempt's job: its id, and the handle the adapter gave."""
    handle = job.poll_handle if job is not None else None
    if handle is None:
        bound = (attempt.binding or {}).get("pollHandle")
        handle = bound if isinstance(bound, str) else None
    external_id = job.external_id if job is not None else attempt.external_id
    assert external_id is not None
    return JobRef(external_id=external_id, poll_handle=handle)
