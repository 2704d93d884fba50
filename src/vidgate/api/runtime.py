"""Everything a running vidgate holds, opened and closed in one place (the lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vidgate.api.hub import Hub
from vidgate.api.notify import Notifier, owners_in
from vidgate.api.ratelimit import RequestLimiter, open_limiter
from vidgate.auth.base import Authenticator
from vidgate.auth.factory import open_authenticator
from vidgate.config import DEFAULT_MODELS, ProviderConfig, Settings
from vidgate.engine.engine import Engine, EngineConfig
from vidgate.engine.meter import NO_METER
from vidgate.events.base import EventBus
from vidgate.events.factory import open_bus
from vidgate.media import MediaStore
from vidgate.metrics import Metrics
from vidgate.providers import meter as upstream_meter
from vidgate.providers.registry import ProviderRegistry
from vidgate.service import TaskService
from vidgate.store.base import Quota
from vidgate.store.sql import SqlTaskStore
from vidgate.store.webhooks_sql import SqlWebhookStore
from vidgate.webhooks.sender import RetryPolicy
from vidgate.webhooks.service import WebhookService
from vidgate.webhooks.worker import WebhookWorker, WorkerConfig

logger = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600.0  # forget expired Idempotency-Keys this often


@dataclass(kw_only=True)
class Runtime:
    settings: Settings
    public_url: str
    store: SqlTaskStore
    bus: EventBus
    providers: ProviderRegistry
    service: TaskService
    hub: Hub | None  # None in a worker: it serves no WebSocket
    notifier: Notifier | None = None  # wakes SSE streams and held creates; None in a worker
    authenticator: Authenticator
    limiter: RequestLimiter
    engine: Engine | None = None
    simulator: Any = None  # vidgate.simulator.server.RunningSimulator in demo mode
    metrics: Metrics | None = None  # None: VIDGATE_METRICS=false
    webhooks: WebhookService | None = None  # the webhook routes' use cases (api roles)
    webhook_worker: WebhookWorker | None = None  # sends webhooks where the engine runs
    _closers: list[Any] = field(default_factory=list)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        bus_name = "redis" if self.settings.redis_url else "eventBus"
        for name, probe in (("database", self.store.ping), (bus_name, self.bus.ping)):
            try:
                await asyncio.wait_for(probe(), timeout=2.0)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {type(exc).__name__}"
        return checks

    async def close(self) -> None:
        for closer in self._closers:
            closer.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        if self.engine is not None:
            await self.engine.stop(self.settings.drain_seconds)
        if self.webhook_worker is not None:
            await self.webhook_worker.stop(self.settings.drain_seconds)
        await self.service.drain()
        if self.hub is not None:
            await self.hub.close()
        if self.notifier is not None:
            self.notifier.close()
        await self.providers.aclose()
        await self.authenticator.close()
        await self.limiter.close()
        await self.bus.close()
        await self.store.close()
        if self.simulator is not None:
            await self.simulator.stop()
        for undo in self._undo:
            undo()


async def open_runtime(
    settings: Settings,
    *,
    public_url: str,
    api: bool = True,
    engine: bool = True,
    metrics: Metrics | None = None,
) -> Runtime:
    simulator = None
    provider_configs = list(settings.providers)
    if settings.demo_mode:
        from vidgate.simulator.config import SimConfig
        from vidgate.simulator.server import start as start_simulator

        simulator = await start_simulator(SimConfig(job_seconds=settings.sim_job_seconds))
        provider_configs = [
            # Mirrored: the in-process simulator forgets its videos when vidgate stops.
            ProviderConfig(
                name="simulator",
                base_url=simulator.base_url,
                models=dict(DEFAULT_MODELS),
                content="mirror",
            )
        ]
        logger.info(
            "demo mode: no provider configured, using the built-in simulator at %s "
            "(jobs take %.0f s; set VIDGATE_CONFIG to use a real upstream)",
            simulator.base_url,
            settings.sim_job_seconds,
        )
    if api and settings.auth_mode != "none" and not _any_limit(settings):
        logger.warning(
            "no per-user limits are set: any authenticated user may start any number of "
            "upstream jobs (set [limits] in VIDGATE_CONFIG; docs/SECURITY.md)"
        )
    store = await SqlTaskStore.open(
        settings.database_url,
        migrate_schema=settings.migrate_on_start,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    bus = open_bus(settings)
    webhook_store = SqlWebhookStore(store.engine)
    media = MediaStore(settings.media_dir, max_bytes=settings.max_video_bytes)
    providers = ProviderRegistry.from_configs(
        provider_configs,
        settings.models,
        allow_private_images=settings.input_reference_allow_private,
    )

    def quota_for(user_id: str) -> Quota:
        limits = settings.limits_for(user_id)
        return Quota(max_active=limits.active_tasks, max_per_day=limits.tasks_per_day)

    service = TaskService(
        store=store,
        bus=bus,
        providers=providers,
        deadline_seconds=settings.task_deadline_seconds,
        quota_for=quota_for,
        # A create or retry wakes an engine at once, in this process or another.
        on_work=bus.announce_work,
        idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        media=media,
    )
    hub = None
    if api:
        hub = Hub(
            store,
            poll_seconds=settings.event_poll_seconds,
            on_delivered=metrics.delivered if metrics is not None else None,
        )
        hub.attach(bus)
    runtime = Runtime(
        settings=settings,
        public_url=public_url,
        store=store,
        bus=bus,
        providers=providers,
        service=service,
        hub=hub,
        authenticator=open_authenticator(settings, store),
        limiter=open_limiter(settings),
        simulator=simulator,
        metrics=metrics,
    )
    if metrics is not None:
        runtime._undo.append(upstream_meter.install(metrics))
        if api:  # the api processes count tasks; workers would only repeat them
            metrics.watch_tasks(store.count_by_status)
    if api:
        runtime._closers.append(asyncio.create_task(_purge_idempotency_keys(store)))
        runtime.notifier = Notifier(
            poll_seconds=settings.event_poll_seconds, owner_of=owners_in(store)
        )
        runtime.notifier.attach(bus)
    if engine:
        runtime.engine = Engine(
            store=store,
            bus=bus,
            providers=providers,
            config=EngineConfig(
                public_url=public_url,
                lease_seconds=settings.lease_seconds,
                max_in_flight=settings.max_in_flight,
                submit_retries=settings.submit_retries,
                mirror_before_seconds=settings.mirror_before_seconds,
                event_retention_days=settings.event_retention_days,
            ),
            media=media,
            meter=metrics or NO_METER,
        )
        bus.on_work(runtime.engine.wake)
        runtime.engine.start()
        runtime.webhook_worker = _webhook_worker(settings, webhook_store, bus)
    if api:
        runtime.webhooks = WebhookService(
            webhook_store, allow_private=settings.webhook_allow_private
        )
    return runtime


def _webhook_worker(
    settings: Settings, webhook_store: SqlWebhookStore, bus: EventBus
) -> WebhookWorker:
    """Webhook delivery beside the engine, on its own tasks and HTTP client."""
    worker = WebhookWorker(
        webhook_store,
        WorkerConfig(
            allow_private=settings.webhook_allow_private,
            timeout_seconds=settings.webhook_timeout_seconds,
            poll_seconds=settings.webhook_poll_seconds,
            retry=RetryPolicy(
                base_seconds=settings.webhook_retry_base_seconds,
                max_seconds=settings.webhook_retry_max_seconds,
                window_seconds=settings.webhook_retry_hours * 3600,
            ),
            log_days=settings.webhook_log_days,
        ),
    )
    bus.listen(worker.on_event)
    worker.start()
    return worker


async def _purge_idempotency_keys(store: SqlTaskStore) -> None:
    """Expired Idempotency-Keys are ignored on use; this keeps their table small."""
    while True:
        with contextlib.suppress(Exception):
            purged = await store.purge_idempotency_keys(datetime.now(UTC))
            if purged:
                logger.debug("forgot %d expired idempotency keys", purged)
        await asyncio.sleep(PURGE_EVERY_SECONDS)


def _any_limit(settings: Settings) -> bool:
    every = [settings.limits, *settings.plans.values(), *settings.users.values()]
    return any(
        limits.active_tasks or limits.tasks_per_day or limits.requests_per_minute
        for limits in every
    )
