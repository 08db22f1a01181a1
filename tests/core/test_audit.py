"""socle_core.audit from another service's application role, on the real PostgreSQL.

The ingestion application role stands for "any service": it may append to
the audit log through ``tenancy.append_audit`` and do nothing else with it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_core.audit import PLATFORM_TENANT, record, record_detached
from socle_core.auth import system_tenant
from socle_core.db import create_session_maker, tenant_session
from socle_devstack.stack import DATABASE, _with_database


@pytest.fixture(scope="module")
async def service_engine(database) -> AsyncIterator[AsyncEngine]:
    """Another service's application role, with a pool large enough for a detached write beside a session."""
    engine = create_async_engine(database.url("ingestion", "app"), pool_size=2, max_overflow=0)
    yield engine
    await engine.dispose()


async def _chain(database, tenant: uuid.UUID) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        return list(
            await connection.fetch(
                "SELECT seq, actor, action, target, outcome, details::text AS details, prev_hash, hash "
                "FROM tenancy.audit_entries WHERE tenant_id = $1 ORDER BY seq",
                tenant,
            )
        )
    finally:
        await connection.close()


async def test_any_service_appends_in_its_own_transaction_and_the_entries_chain(database, service_engine) -> None:
    tenant = uuid.uuid4()
    maker = create_session_maker(service_engine)
    async with tenant_session(maker, system_tenant(tenant, reason="test")) as session:
        first = await record(session, system_tenant(tenant, reason="test"), actor="user-1", action="devices.create")
        second = await record(
            session, tenant, actor="user-1", action="devices.retire", target="device:42", details={"why": "broken"}
        )
        # The caller's tenant context is intact after the definer function ran.
        assert await session.scalar(text("SELECT current_setting('app.tenant_id')")) == str(tenant)
    assert (first, second) == (1, 2)
    rows = await _chain(database, tenant)
    assert [(r["seq"], r["action"], r["target"], r["outcome"]) for r in rows] == [
        (1, "devices.create", None, "success"),
        (2, "devices.retire", "device:42", "success"),
    ]
    assert rows[0]["prev_hash"] == bytes(32)
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[1]["details"] == '{"why": "broken"}'


async def test_an_entry_rolls_back_with_the_action_it_records(database, service_engine) -> None:
    tenant = uuid.uuid4()
    maker = create_session_maker(service_engine)

    async def failing_action() -> None:
        async with tenant_session(maker, None) as session:
            await record(session, tenant, actor="user-1", action="devices.create")
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError, match="the action failed"):
        await failing_action()
    assert await _chain(database, tenant) == []
    # Nothing was consumed: the next entry is the chain's first.
    async with tenant_session(maker, None) as session:
        assert await record(session, tenant, actor="user-1", action="devices.create") == 1


async def test_a_detached_entry_is_kept_when_the_request_rolls_back(database, service_engine) -> None:
    tenant = uuid.uuid4()
    maker = create_session_maker(service_engine)

    async def refused_request() -> None:
        async with tenant_session(maker, None) as session:
            await session.execute(text("SELECT 1"))
            await record_detached(service_engine, tenant, actor="user-9", action="readings.read", target="tenant:other")
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await refused_request()
    rows = await _chain(database, tenant)
    assert [(r["seq"], r["action"], r["outcome"]) for r in rows] == [(1, "readings.read", "refused")]


async def test_events_without_a_tenant_go_to_the_platform_chain(database, service_engine) -> None:
    before = len(await _chain(database, PLATFORM_TENANT))
    seq = await record_detached(service_engine, None, actor="system:test", action="platform.checked", outcome="success")
    rows = await _chain(database, PLATFORM_TENANT)
    assert len(rows) == before + 1
    assert rows[-1]["seq"] == seq
    assert rows[-1]["action"] == "platform.checked"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actor": " ", "action": "devices.create"}, "needs an actor"),
        ({"actor": "u", "action": "Devices Create"}, "area.verb"),
        ({"actor": "u", "action": "devices"}, "area.verb"),
        ({"actor": "u", "action": "devices.create", "outcome": "maybe"}, "outcome must be one of"),
    ],
)
async def test_a_malformed_entry_is_refused_before_reaching_the_database(service_engine, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        await record_detached(service_engine, uuid.uuid4(), **kwargs)


async def test_another_service_cannot_read_write_or_erase_the_log_directly(service_engine) -> None:
    tenant = uuid.uuid4()
    await record_detached(service_engine, tenant, actor="u", action="devices.create", outcome="success")
    for statement in (
        "SELECT count(*) FROM tenancy.audit_entries",
        "UPDATE tenancy.audit_heads SET last_seq = 1",
        "DELETE FROM tenancy.audit_entries",
        "INSERT INTO tenancy.audit_heads VALUES (gen_random_uuid(), 1, '\\x00', now())",
        "SELECT tenancy.ensure_audit_partition(gen_random_uuid(), now())",
    ):
        async with service_engine.connect() as connection:
            with pytest.raises(DBAPIError, match="permission denied"):
                await connection.execute(text(statement))
