"""The tenant registry as the tests see it: tenants made by a test, registered so their audit chains may start.

The database starts no audit chain for a tenant the registry does not know (ADR 0007), and
most tests make their tenants in Keycloak or in tokens only. ``tests/conftest.py`` points
this module at the session's database once it is migrated.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg

#: The database whose tenant registry ``new_tenant`` writes to, once the session's ``database`` is up.
_registry: list[str] = []

_REGISTER = """
INSERT INTO tenancy.tenants (id, kind, key, name, insee_code, parent_id, status)
VALUES ($1, 'commune', $2, $2, $3, $1, 'deleted') ON CONFLICT DO NOTHING
"""


def use_tenant_registry(admin_dsn: str) -> None:
    """Called by the ``database`` fixture: from now on, every tenant a test makes is registered there."""
    _registry[:] = [admin_dsn]


def register_tenant(tenant_id: uuid.UUID, alias: str) -> None:
    """Put a tenant made by a test (not onboarded) in the tenant registry: its audit chain may be written.

    The database starts no audit chain for a tenant it does not know. The row is one no
    listing, report or onboarding of the suite looks at: a commune under itself, marked
    deleted, with an INSEE code no real commune has (``Z`` and four letters or digits).
    """
    if not _registry:
        return

    async def insert() -> None:
        connection = await asyncpg.connect(_registry[0])
        try:
            # Under its own alias, so that a token naming both agrees with the registry (the core
            # refuses an alias and a tenant id of different tenants); else, when another test took
            # that alias, under a key of its own.
            keys = iter([alias])
            while not await connection.fetchval("SELECT 1 FROM tenancy.tenants WHERE id = $1", tenant_id):
                insee = "Z" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(4))
                key = next(keys, f"test-{alias}-{tenant_id.hex[:8]}")
                await connection.execute(_REGISTER, tenant_id, key, insee)
        finally:
            await connection.close()

    # Called from sync and async tests alike: on a loop of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, insert()).result()
