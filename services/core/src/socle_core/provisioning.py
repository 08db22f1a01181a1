"""Database roles and schemas of a service, created once by an administrator.

Per service: an owner role that owns the schema and its tables and runs the migrations,
and an application role the service connects with, which is neither owner nor superuser
nor BYPASSRLS and holds only DML rights. That split is what makes FORCE ROW LEVEL
SECURITY binding: a table owner could otherwise bypass the policies.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: Group role of every service's application role: may append to the audit log
#: (EXECUTE on ``tenancy.append_audit`` only, granted by the tenancy migrations).
AUDIT_WRITER = "socle_audit_writer"
#: Group role of every service's application and owner roles: may evaluate
#: ``tenancy.shared_with_current_tenant``, which the shared-read RLS policies call, and
#: ``tenancy.tenant_directory``, which tells which tenants exist (ADR 0013).
GRANT_READER = "socle_grant_reader"


@dataclass(frozen=True)
class ServiceRoles:
    service: str
    schema: str
    owner: str
    app: str

    @classmethod
    def for_service(cls, service: str) -> ServiceRoles:
        return cls(service, service, f"socle_{service}_owner", f"socle_{service}_app")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return f'"{name}"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def provision_service(
    admin_dsn: str, database: str, roles: ServiceRoles, owner_password: str, app_password: str
) -> None:
    """Idempotently create the roles, the schema and the grants of one service."""
    connection = await asyncpg.connect(admin_dsn)
    try:
        for role, password in ((roles.owner, owner_password), (roles.app, app_password)):
            exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            await connection.execute(
                f"{verb} ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"NOBYPASSRLS NOREPLICATION PASSWORD {_literal(password)}"
            )
        owner, app, schema = _ident(roles.owner), _ident(roles.app), _ident(roles.schema)
        await connection.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {owner}, {app}")
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}")
        await connection.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
        await connection.execute(f"GRANT USAGE ON SCHEMA {schema} TO {app}")
        await connection.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}"
        )
        await connection.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {app}"
        )
        await connection.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app}")
        await connection.execute(f"ALTER ROLE {app} SET search_path = {schema}")
        await connection.execute(f"ALTER ROLE {owner} SET search_path = {schema}")
        await _join_platform_groups(connection, roles)
    finally:
        await connection.close()


async def _join_platform_groups(connection: asyncpg.Connection, roles: ServiceRoles) -> None:
    """Create the cross-service group roles once, and make this service's roles members."""
    for group in (AUDIT_WRITER, GRANT_READER):
        if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", group):
            # Another service's provisioning may create it meanwhile.
            with contextlib.suppress(asyncpg.DuplicateObjectError):
                await connection.execute(f"CREATE ROLE {_ident(group)} NOLOGIN")
    await connection.execute(f"GRANT {_ident(AUDIT_WRITER)} TO {_ident(roles.app)}")
    await connection.execute(f"GRANT {_ident(GRANT_READER)} TO {_ident(roles.app)}, {_ident(roles.owner)}")


async def create_database(admin_dsn: str, database: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await connection.execute(f"CREATE DATABASE {_ident(database)}")
        await connection.execute(f"REVOKE ALL ON DATABASE {_ident(database)} FROM PUBLIC")
    finally:
        await connection.close()
