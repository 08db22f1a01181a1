"""Which tenants the registry holds, as the services other than tenancy may ask (ADR 0013).

The registry is tenancy's table; no other service reads it. They call
``tenancy.tenant_directory(id, key)``, a read-only function of the tenancy schema that
answers the rows with that id or that key (id, key and status, nothing else).
``TenantBindings`` uses it to tell whether a token's organization alias and tenant id name
the same tenant, with a short cache: a service does not query the registry on every request.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from socle_core.errors import ServiceUnavailable

_LOOKUP = text("SELECT id, key, status FROM tenancy.tenant_directory(:id, :key)")


@dataclass(frozen=True)
class RegisteredTenant:
    id: uuid.UUID
    key: str
    status: str


async def registered(
    executor: AsyncSession | AsyncConnection, *, tenant_id: uuid.UUID | None = None, key: str | None = None
) -> list[RegisteredTenant]:
    """The registry's tenants whose id is ``tenant_id`` or whose key is ``key`` (at most two)."""
    rows = await executor.execute(_LOOKUP, {"id": tenant_id, "key": key})
    return [RegisteredTenant(row.id, row.key, row.status) for row in rows]


class TenantBindings:
    """Whether an organization alias and a tenant id name the same tenant of the registry.

    They disagree when the registry holds that id under another key, or that key under
    another id. A pair the registry does not know at all contradicts nothing: its tenant id
    names no registered tenant's data. Answers are cached ``ttl_seconds`` (bounded size).
    """

    def __init__(self, engine: AsyncEngine, *, ttl_seconds: float = 60.0, max_entries: int = 10_000) -> None:
        self._engine = engine
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._cache: dict[tuple[str, uuid.UUID], tuple[float, bool]] = {}
        self.lookups = 0

    async def agree(self, alias: str, tenant_id: uuid.UUID) -> bool:
        now = time.monotonic()
        cached = self._cache.get((alias, tenant_id))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            async with self._engine.connect() as connection:
                rows = await registered(connection, tenant_id=tenant_id, key=alias)
        except SQLAlchemyError as exc:
            raise ServiceUnavailable(
                "le registre des collectivités est injoignable : le jeton ne peut être vérifié"
            ) from exc
        self.lookups += 1
        agrees = all(row.id == tenant_id and row.key == alias for row in rows)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[(alias, tenant_id)] = (now, agrees)
        return agrees


__all__ = ["RegisteredTenant", "TenantBindings", "registered"]
