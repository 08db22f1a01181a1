"""A throw-away database of the test cluster: the services' roles, schemas and migrations, dropped after.

For tests that must break a database (RLS disabled on a table) or need an empty platform
(a commune imported from its bundle) without touching the shared ``socle`` database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import asyncpg

from socle_core.migrations import upgrade
from socle_core.provisioning import ServiceRoles, provision_service
from socle_devstack.stack import REPO_ROOT, Credentials, Database, _with_database


@contextmanager
def throwaway_database(
    database: Database, credentials: Credentials, services: tuple[str, ...], prefix: str = "socle_scratch"
) -> Iterator[Callable[[str, str], str]]:
    """A new database with these services provisioned and migrated; yields ``url(service, kind)``."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = _with_database(database.admin_dsn, name)

    async def create() -> None:
        connection = await asyncpg.connect(database.admin_dsn)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        for service in services:
            await provision_service(
                admin,
                name,
                ServiceRoles.for_service(service),
                credentials[f"{service}_migrator"],
                credentials[f"{service}_app"],
            )

    async def drop() -> None:
        connection = await asyncpg.connect(database.admin_dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    def url(service: str, kind: str) -> str:
        return database.url(service, kind).rsplit("/", 1)[0] + f"/{name}"

    asyncio.run(create())
    try:
        for service in services:
            migrations = REPO_ROOT / "services" / service / "src" / f"socle_{service}" / "db" / "migrations"
            upgrade(migrations, url(service, "owner"), service)
        yield url
    finally:
        asyncio.run(drop())
