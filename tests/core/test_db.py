"""The tenant context in PostgreSQL, against the real server and the real migrations."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from socle_core.auth import system_tenant
from socle_core.db import bind_tenant, create_session_maker, tenant_session
from socle_core.tenant import TenantId


async def _insert_device(owner: AsyncEngine, tenant: uuid.UUID, external_id: str) -> None:
    async with owner.begin() as conn:
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        await conn.execute(
            text(
                "INSERT INTO ingestion.devices (tenant_id, id, external_id, name, kind) "
                "VALUES (:t, :id, :e, 'gauge', 'flood-gauge')"
            ),
            {"t": tenant, "id": uuid.uuid4(), "e": external_id},
        )


@pytest.fixture
async def two_tenants_with_devices(owner_engine: AsyncEngine) -> tuple[TenantId, TenantId]:
    a, b = uuid.uuid4(), uuid.uuid4()
    await _insert_device(owner_engine, a, "a-1")
    await _insert_device(owner_engine, a, "a-2")
    await _insert_device(owner_engine, b, "b-1")
    return system_tenant(a, reason="test"), system_tenant(b, reason="test")


async def _external_ids(app_engine: AsyncEngine, tenant: TenantId | None) -> set[str]:
    maker = create_session_maker(app_engine)
    async with tenant_session(maker, tenant) as session:
        rows = await session.execute(text("SELECT external_id FROM ingestion.devices"))
        return {r[0] for r in rows}


async def test_no_tenant_context_sees_zero_tenant_rows(app_engine, two_tenants_with_devices) -> None:
    assert await _external_ids(app_engine, None) == set()


async def test_tenant_sees_only_its_rows_without_any_where_clause(app_engine, two_tenants_with_devices) -> None:
    a, b = two_tenants_with_devices
    assert await _external_ids(app_engine, a) == {"a-1", "a-2"}
    assert await _external_ids(app_engine, b) == {"b-1"}


async def test_context_is_per_transaction_so_a_pooled_connection_carries_nothing_over(
    app_engine, two_tenants_with_devices
) -> None:
    a, _ = two_tenants_with_devices
    maker = create_session_maker(app_engine)  # the engine's pool holds exactly one connection
    async with maker() as session:
        bind_tenant(session, a)
        first = await session.execute(text("SELECT pg_backend_pid(), count(*) FROM ingestion.devices"))
        pid_a, count_a = first.one()
        await session.commit()
    async with maker() as session:
        second = await session.execute(
            text("SELECT pg_backend_pid(), count(*), current_setting('app.tenant_id', true) FROM ingestion.devices")
        )
        pid, count, setting = second.one()
        await session.commit()
    assert pid == pid_a, "the test needs the same pooled connection twice"
    assert count_a == 2
    assert count == 0
    assert setting == ""


async def test_writing_a_row_for_another_tenant_is_refused(app_engine, two_tenants_with_devices) -> None:
    a, b = two_tenants_with_devices
    maker = create_session_maker(app_engine)
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(maker, a) as session:
            await session.execute(
                text(
                    "INSERT INTO ingestion.devices (tenant_id, id, external_id, name, kind) "
                    "VALUES (:t, :id, 'smuggled', 'x', 'x')"
                ),
                {"t": b.uuid, "id": uuid.uuid4()},
            )
    assert "smuggled" not in await _external_ids(app_engine, b)


async def test_update_and_delete_cannot_reach_another_tenants_rows(app_engine, two_tenants_with_devices) -> None:
    a, b = two_tenants_with_devices
    maker = create_session_maker(app_engine)
    async with tenant_session(maker, a) as session:
        updated = await session.execute(
            text("UPDATE ingestion.devices SET name = 'hijacked' WHERE external_id = 'b-1'")
        )
        deleted = await session.execute(text("DELETE FROM ingestion.devices WHERE external_id = 'b-1'"))
    assert updated.rowcount == 0
    assert deleted.rowcount == 0
    assert await _external_ids(app_engine, b) == {"b-1"}


async def test_application_role_is_neither_owner_nor_bypassrls(app_engine) -> None:
    async with app_engine.connect() as conn:
        role = (
            await conn.execute(
                text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
        ).one()
        owned = (
            await conn.execute(text("SELECT count(*) FROM pg_tables WHERE tableowner = current_user"))
        ).scalar_one()
    assert role.rolname == "socle_ingestion_app"
    assert role.rolsuper is False
    assert role.rolbypassrls is False
    assert owned == 0


async def test_tenant_must_be_bound_before_the_transaction_begins(app_engine) -> None:
    maker = create_session_maker(app_engine)
    async with maker() as session:
        await session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match=r"before the session's transaction begins"):
            bind_tenant(session, system_tenant(uuid.uuid4(), reason="test"))


def test_a_tenant_id_cannot_be_built_outside_the_auth_layer() -> None:
    with pytest.raises(TypeError, match=r"only by socle_core\.auth"):
        TenantId(uuid.uuid4(), _issuer=object())
