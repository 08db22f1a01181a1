"""The roles provisioning creates, on the real PostgreSQL: nobody logs in as a schema owner."""

from __future__ import annotations

import asyncpg
import pytest

from socle_core.provisioning import ServiceRoles
from socle_devstack.stack import DATABASE, SERVICES, _with_database


async def _admin(database) -> asyncpg.Connection:
    return await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))


async def test_owners_cannot_log_in_and_migrators_hold_nothing_until_they_become_the_owner(database) -> None:
    admin = await _admin(database)
    try:
        roles = {
            r["rolname"]: r
            for r in await admin.fetch(
                "SELECT rolname, rolcanlogin, rolinherit, rolpassword IS NOT NULL AS has_password FROM pg_authid "
                "WHERE rolname LIKE 'socle\\_%'"
            )
        }
    finally:
        await admin.close()
    for service in SERVICES:
        service_roles = ServiceRoles.for_service(service)
        owner, migrator, app = (roles[r] for r in (service_roles.owner, service_roles.migrator, service_roles.app))
        assert (owner["rolcanlogin"], owner["has_password"]) == (False, False), service
        assert (migrator["rolcanlogin"], migrator["rolinherit"]) == (True, False), service
        assert app["rolcanlogin"], service


@pytest.mark.parametrize("service", SERVICES)
async def test_a_migrator_session_is_the_owner_and_nothing_once_it_gives_the_role_up(database, service) -> None:
    roles = ServiceRoles.for_service(service)
    password = database.credentials[f"{service}_migrator"]
    connection = await asyncpg.connect(
        host=database.host, port=database.port, user=roles.migrator, password=password, database=DATABASE
    )
    try:
        assert tuple(await connection.fetchrow("SELECT session_user, current_user")) == (roles.migrator, roles.owner)
        await connection.execute("SET ROLE NONE")
        assert await connection.fetchval("SELECT current_user") == roles.migrator
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.fetch(f"SELECT * FROM {roles.schema}.alembic_version")
    finally:
        await connection.close()
    # The owner has no password and may not log in: no credential opens a session as it.
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await asyncpg.connect(
            host=database.host, port=database.port, user=roles.owner, password=password, database=DATABASE
        )
