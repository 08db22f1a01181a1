"""Database roles and schemas of a service, created once by an administrator.

Per service: an owner role that owns the schema and its tables, an application role the
service connects with, which is neither owner nor superuser nor BYPASSRLS and holds only
DML rights, and a migrator role. That split is what makes FORCE ROW LEVEL SECURITY binding:
a table owner could otherwise bypass the policies.

The owner is NOLOGIN: nobody connects as it, so its powers (which reach past the audit
log's triggers) are held by no standing credential of a running service. Migrations log in
as the migrator, a NOINHERIT member of the owner that holds none of its privileges until
it takes the owner's role (``SET ROLE``, which ``socle_core.migrations`` does, and the
migrator's default role); its URL reaches the migration Job only.
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
    migrator: str

    @classmethod
    def for_service(cls, service: str) -> ServiceRoles:
        prefix = f"socle_{service}"
        return cls(service, service, f"{prefix}_owner", f"{prefix}_app", f"{prefix}_migrator")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return f'"{name}"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_LIMITS = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"


async def _role(connection: asyncpg.Connection, role: str, attributes: str) -> None:
    exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    await connection.execute(f"{'ALTER' if exists else 'CREATE'} ROLE {_ident(role)} {attributes}")


async def provision_service(
    admin_dsn: str, database: str, roles: ServiceRoles, migrator_password: str, app_password: str
) -> None:
    """Idempotently create the roles, the schema and the grants of one service.

    Run again on a database provisioned before owners became NOLOGIN, it takes the owner's
    login and password away.
    """
    connection = await asyncpg.connect(admin_dsn)
    try:
        await _role(connection, roles.owner, f"NOLOGIN {_LIMITS} PASSWORD NULL")
        await _role(connection, roles.app, f"LOGIN {_LIMITS} PASSWORD {_literal(app_password)}")
        await _role(connection, roles.migrator, f"LOGIN NOINHERIT {_LIMITS} PASSWORD {_literal(migrator_password)}")
        owner, app, schema = _ident(roles.owner), _ident(roles.app), _ident(roles.schema)
        migrator = _ident(roles.migrator)
        await connection.execute(f"GRANT {owner} TO {migrator}")
        await connection.execute(f"ALTER ROLE {migrator} SET role = {_literal(roles.owner)}")
        await connection.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {migrator}, {app}")
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
