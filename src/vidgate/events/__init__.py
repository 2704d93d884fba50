"""Event delivery: the ``EventBus`` port and its in-process adapter."""
