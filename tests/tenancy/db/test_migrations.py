"""The tenancy schema as the migrations build it: registry constraints and tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_core.migrations import downgrade, upgrade
from socle_core.provisioning import ServiceRoles, provision_service
from socle_devstack.stack import _with_database
from socle_tenancy.db.migrate import MIGRATIONS
from socle_tenancy.db.models import SCHEMA


@pytest.fixture
async def tenancy_owner(database) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database.url("tenancy", "owner"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def tenancy_app(database) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database.url("tenancy", "app"))
    yield engine
    await engine.dispose()


async def test_constraints_follow_the_naming_convention(tenancy_owner) -> None:
    async with tenancy_owner.connect() as connection:
        names = set(
            (
                await connection.execute(
                    text(
                        "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                        "WHERE n.nspname = 'tenancy'"
                    )
                )
            ).scalars()
        )
    assert {
        "pk_onboarding_steps",
        "pk_quotas",
        "fk_tenants_parent_id_tenants",
        "uq_tenants_insee_code",
        "ck_onboarding_steps_status",
        "ck_tenants_identifiers",
    } <= names, sorted(names)


async def _tenant(connection, kind: str = "commune") -> uuid.UUID:
    """A bare commune row, under the EPCI (the registry itself is not tenant-owned)."""
    tenant_id = uuid.uuid4()
    parent = await connection.scalar(text("SELECT id FROM tenancy.tenants WHERE kind = 'epci'"))
    if parent is None:  # rolled back with the test's transaction
        parent = uuid.uuid4()
        await connection.execute(
            text("INSERT INTO tenancy.tenants (id, kind, key, name, siren) VALUES (:id, 'epci', 'epci-x', 'X', 'x')"),
            {"id": parent},
        )
    await connection.execute(
        text(
            "INSERT INTO tenancy.tenants (id, kind, key, name, insee_code, parent_id) "
            "VALUES (:id, 'commune', :key, 'Test', :insee, :parent)"
        ),
        {
            "id": tenant_id,
            "key": f"commune-t{tenant_id.hex[:6]}",
            "insee": f"9{tenant_id.int % 10000:04d}",
            "parent": parent,
        },
    )
    return tenant_id


async def test_quotas_and_steps_of_one_tenant_are_invisible_and_unwritable_from_another(tenancy_app) -> None:
    async with tenancy_app.connect() as connection:
        transaction = await connection.begin()
        a, b = await _tenant(connection), await _tenant(connection)
        for tenant in (a, b):
            await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
            await connection.execute(
                text(
                    "INSERT INTO tenancy.quotas (tenant_id, max_devices, max_readings_per_day, storage_gb) "
                    "VALUES (:t, 1, 1, 1)"
                ),
                {"t": tenant},
            )
            await connection.execute(
                text("INSERT INTO tenancy.onboarding_steps (tenant_id, step, position) VALUES (:t, 'x', 1)"),
                {"t": tenant},
            )
        # In A's context, B's rows do not exist: not readable, not updatable, not deletable.
        await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a)})
        for table in ("quotas", "onboarding_steps"):
            seen = (await connection.execute(text(f"SELECT tenant_id FROM tenancy.{table}"))).scalars().all()
            assert set(seen) == {a}, table
            updated = await connection.execute(
                text(f"UPDATE tenancy.{table} SET updated_at = now() WHERE tenant_id = :b"), {"b": b}
            )
            assert updated.rowcount == 0
            deleted = await connection.execute(text(f"DELETE FROM tenancy.{table} WHERE tenant_id = :b"), {"b": b})
            assert deleted.rowcount == 0
        # No context: no rows at all.
        await connection.execute(text("SELECT set_config('app.tenant_id', '', true)"))
        assert await connection.scalar(text("SELECT count(*) FROM tenancy.quotas")) == 0
        # Writing another tenant's row is refused by the policy's WITH CHECK.
        await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a)})
        savepoint = await connection.begin_nested()
        with pytest.raises(Exception, match="row-level security"):
            await connection.execute(
                text("INSERT INTO tenancy.onboarding_steps (tenant_id, step, position) VALUES (:b, 'y', 2)"),
                {"b": b},
            )
        await savepoint.rollback()
        await transaction.rollback()


async def test_a_deployment_holds_one_epci(tenancy_app) -> None:
    async with tenancy_app.connect() as connection, connection.begin() as transaction:
        insert = text("INSERT INTO tenancy.tenants (id, kind, key, name, siren) VALUES (:id, 'epci', :k, 'X', :s)")
        if not await connection.scalar(text("SELECT count(*) FROM tenancy.tenants WHERE kind = 'epci'")):
            await connection.execute(insert, {"id": uuid.uuid4(), "k": "epci-200000001", "s": "200000001"})
        with pytest.raises(IntegrityError, match="uq_tenants_one_epci"):
            await connection.execute(insert, {"id": uuid.uuid4(), "k": "epci-200000002", "s": "200000002"})
        await transaction.rollback()


async def test_the_migrations_go_down_and_up_again_on_an_empty_database(database) -> None:
    """On a database of its own, so the suite's shared one keeps its schema."""
    name = f"socle_roundtrip_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        roles = ServiceRoles.for_service("tenancy")
        await provision_service(
            _with_database(database.admin_dsn, name),
            name,
            roles,
            database.credentials["tenancy_migrator"],
            database.credentials["tenancy_app"],
        )
        owner_url = database.url("tenancy", "owner").rsplit("/", 1)[0] + f"/{name}"
        await asyncio.to_thread(upgrade, MIGRATIONS, owner_url, SCHEMA)
        await asyncio.to_thread(downgrade, MIGRATIONS, owner_url, SCHEMA, "0001")
        await asyncio.to_thread(upgrade, MIGRATIONS, owner_url, SCHEMA)
        check = await asyncpg.connect(_with_database(database.admin_dsn, name))
        try:
            tables = {
                r["relname"]
                for r in await check.fetch(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'tenancy' AND c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity"
                )
            }
        finally:
            await check.close()
        assert tables == {"onboarding_steps", "quotas", "data_grants", "audit_heads"}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_every_write_to_a_grant_lands_in_both_parties_chains_whoever_writes_it(tenancy_app) -> None:
    """SQL straight from the tenancy role, no API: the trigger records it all the same."""
    async with tenancy_app.connect() as connection:
        transaction = await connection.begin()
        grantor, grantee = await _tenant(connection), await _tenant(connection)
        grant = uuid.uuid4()
        await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(grantor)})
        await connection.execute(
            text(
                "INSERT INTO tenancy.data_grants (id, grantor_tenant_id, grantee_tenant_id, dataset, reason, "
                "created_by, expires_at) VALUES (:g, :a, :b, 'devices', 'written by hand', 'mallory', "
                "now() + interval '1 day')"
            ),
            {"g": grant, "a": grantor, "b": grantee},
        )
        await connection.execute(
            text(
                "UPDATE tenancy.data_grants SET revoked_at = now(), revoked_by = 'mallory', "
                "revocation_reason = 'quietly' WHERE id = :g"
            ),
            {"g": grant},
        )
        chains = {}
        for party in (grantor, grantee):
            await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(party)})
            chains[party] = (
                await connection.execute(
                    text(
                        "SELECT seq, actor, action, target, details FROM tenancy.audit_entries "
                        "WHERE tenant_id = :t ORDER BY seq"
                    ),
                    {"t": party},
                )
            ).all()
        await transaction.rollback()
    for party, side in ((grantor, "grantor"), (grantee, "grantee")):
        rows = chains[party]
        assert [(r.seq, r.actor, r.action, r.target) for r in rows] == [
            (1, "mallory", "grants.create", f"grant:{grant}"),
            (2, "mallory", "grants.revoke", f"grant:{grant}"),
        ]
        assert rows[0].details["side"] == side
        assert (rows[0].details["reason"], rows[1].details["reason"]) == ("written by hand", "quietly")
        assert rows[0].details["database_role"] == "socle_tenancy_app"
        assert rows[0].details["grantor_tenant_id"] == str(grantor)
