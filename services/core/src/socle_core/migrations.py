"""Alembic, the same way for every service, and the tenant-isolation helpers.

Each service keeps its own migration history in its own schema (``<schema>.alembic_version``)
and runs it as the schema owner: it connects as the service's migrator role and takes the
owner's role first (``SET ROLE``; the owner cannot log in, see ``socle_core.provisioning``).
``tenant_owned_table`` is the only sanctioned way to create a tenant-owned table: it enables
and forces row-level security and creates the isolation policy in the same migration, so
such a table cannot ship without its policy (``tests/core/test_isolation_catalogue.py``
fails on any table that escaped it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from socle_core.provisioning import ServiceRoles

#: The constraint naming convention every service's MetaData uses.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TENANT_POLICY = "tenant_isolation"
#: The tenant context as RLS reads it: NULL (no row matches) when no tenant is set.
CURRENT_TENANT_SQL = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def alembic_config(migrations_dir: Path, url: str, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["socle_schema"] = schema
    return config


def upgrade(migrations_dir: Path, url: str, schema: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_dir, url, schema), revision)


def downgrade(migrations_dir: Path, url: str, schema: str, revision: str) -> None:
    command.downgrade(alembic_config(migrations_dir, url, schema), revision)


def run_env(metadata: MetaData) -> None:
    """Body of every service's ``env.py``: online migrations through asyncpg."""
    config = context.config
    schema = config.attributes.get("socle_schema") or metadata.schema
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True, version_table_schema=schema)
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Connection) -> None:
        # Objects are created by, and owned by, the owner: whichever role logged in, become it.
        connection.exec_driver_sql(f'SET ROLE "{ServiceRoles.for_service(str(schema)).owner}"')
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=False,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(str(url), poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run())


def enable_tenant_isolation(table: str, schema: str, *, shared_via: str | None = None) -> None:
    """ENABLE + FORCE row-level security and create the tenant isolation policy.

    ``shared_via``, when given, is an extra SQL condition (OR-ed into USING only) through
    which rows shared by a data-sharing grant become readable; writes stay tenant-only.
    """
    qualified = f'"{schema}"."{table}"'
    using = f"tenant_id = {CURRENT_TENANT_SQL}"
    if shared_via:
        using = f"({using}) OR ({shared_via})"
    op.execute(f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY")
    if shared_via:
        op.execute(
            f"CREATE POLICY {TENANT_POLICY} ON {qualified} FOR ALL "
            f"USING (tenant_id = {CURRENT_TENANT_SQL}) WITH CHECK (tenant_id = {CURRENT_TENANT_SQL})"
        )
        op.execute(f"CREATE POLICY {TENANT_POLICY}_shared_read ON {qualified} FOR SELECT USING ({using})")
    else:
        op.execute(
            f"CREATE POLICY {TENANT_POLICY} ON {qualified} FOR ALL "
            f"USING ({using}) WITH CHECK (tenant_id = {CURRENT_TENANT_SQL})"
        )


def shared_via_grant(dataset: str, resource_column: str) -> str:
    """The ``shared_via`` condition of a dataset shared by data-sharing grants (ADR 0007).

    ``tenancy.shared_with_current_tenant`` (tenancy's migrations, which run first) tells
    whether a live grant of the row's tenant lets the current tenant read it; every
    service's roles may call it as members of ``socle_grant_reader``.
    """
    if not dataset.isidentifier() or not resource_column.isidentifier():
        raise ValueError(f"not a dataset or column name: {dataset!r}, {resource_column!r}")
    return f"tenancy.shared_with_current_tenant(tenant_id, '{dataset}', {resource_column})"


def add_shared_read_policy(table: str, schema: str, *, dataset: str, resource_column: str) -> None:
    """Make rows of an existing tenant-owned table readable (never writable) through grants.

    A separate permissive ``FOR SELECT`` policy, OR-ed by PostgreSQL with the strict tenant
    policy: UPDATE and DELETE still need the row's own tenant.
    """
    op.execute(
        f'CREATE POLICY {TENANT_POLICY}_shared_read ON "{schema}"."{table}" FOR SELECT '
        f"USING ({shared_via_grant(dataset, resource_column)})"
    )


def drop_shared_read_policy(table: str, schema: str) -> None:
    op.execute(f'DROP POLICY {TENANT_POLICY}_shared_read ON "{schema}"."{table}"')


def tenant_owned_table(name: str, schema: str, *columns: Any, shared_via: str | None = None) -> sa.Table:
    """Create a table owned by a tenant: a ``tenant_id`` column, its index, RLS and policy."""
    table = op.create_table(
        name,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        *columns,
        schema=schema,
    )
    op.create_index(f"ix_{name}_tenant_id", name, ["tenant_id"], schema=schema)
    enable_tenant_isolation(name, schema, shared_via=shared_via)
    return table


def main(migrations_dir: Path, schema: str, url: str, argv: list[str] | None = None) -> int:
    """``python -m socle_<service>.db.migrate [upgrade [REV] | downgrade REV | current]``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv) or ["upgrade"]
    action, revision = args[0], (args[1] if len(args) > 1 else None)
    config = alembic_config(migrations_dir, url, schema)
    if action == "upgrade":
        command.upgrade(config, revision or "head")
    elif action == "downgrade" and revision:
        command.downgrade(config, revision)
    elif action == "current":
        command.current(config, verbose=True)
    else:
        print("usage: migrate [upgrade [REV] | downgrade REV | current]", file=sys.stderr)
        return 2
    return 0
