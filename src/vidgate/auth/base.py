"""The ``Authenticator`` port and the ``Principal`` it yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class Principal:
    """An authenticated caller: the user whose tasks it may see, and whether it may use
    the admin routes."""

    user_id: str
    admin: bool = False


class Authenticator(Protocol):
    async def authenticate(self, token: str | None) -> Principal:
        """The principal for a bearer token (None: none was sent); raises
        ``vidgate.domain.errors.Unauthenticated`` with a specific code otherwise."""
        ...

    async def close(self) -> None: ...
