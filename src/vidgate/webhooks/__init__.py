"""Outbound webhooks, Standard Webhooks v1 (docs/API.md "Webhooks").

``task_events`` is the source of truth: the dispatcher turns its rows into delivery rows
(``vidgate.store.webhooks``), the sender claims due deliveries with a lease and posts them,
signed, to addresses it resolved and checked itself. Both run as their own asyncio tasks
with their own HTTP client, so a slow or dead receiver never slows the engine.
"""
