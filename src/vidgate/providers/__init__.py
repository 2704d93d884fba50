"""Upstream video APIs behind one port (``Provider``), with a registry that routes by model."""
