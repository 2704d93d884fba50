"""The engine: claims due tasks under a lease and steps them against their providers."""
