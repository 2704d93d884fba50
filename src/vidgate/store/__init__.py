"""Persistence: the ``TaskStore`` port and its SQLAlchemy adapter. All SQL lives here."""
