"""Event delivery: the ``EventBus`` port, its in-process and Redis adapters, ``open_bus``."""
