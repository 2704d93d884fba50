"""API keys in SqlTaskStore."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import insert, select, update

from vidgate.store.base import ApiKey
from vidgate.store.engine import SqlConnections
from vidgate.store.schema import api_keys


class ApiKeyQueries(SqlConnections):
    """The ``TaskStore`` methods for API keys."""

    async def add_api_key(self, key: ApiKey) -> None:
        async with self._writing() as conn:
            await conn.execute(insert(api_keys).values(**dataclasses.asdict(key)))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        async with self._reading(one_statement=True) as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        return None if row is None else ApiKey(**row._mapping)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        async with self._reading() as conn:
            rows = (await conn.execute(query)).all()
        return [ApiKey(**row._mapping) for row in rows]

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        async with self._writing() as conn:
            found = (
                await conn.execute(select(api_keys.c.revoked_at).where(api_keys.c.key_id == key_id))
            ).first()
            if found is None:
                return False
            if found[0] is None:
                await conn.execute(
                    update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=at)
                )
        return True
