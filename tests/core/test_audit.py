"""socle_core.audit from another service's application role, on the real PostgreSQL.

The ingestion application role stands for "any service": it may append to the audit log
through ``tenancy.append_audit`` and do nothing else with it. Each service's own role then
tries, in plain SQL, what a compromised or buggy service would: write another tenant's
chain, start a chain for a tenant that does not exist, append a malformed entry, read other
tenants' chain heads or learn of grants it is no party to.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_core.audit import PLATFORM_TENANT, record, record_detached
from socle_core.auth import system_tenant
from socle_core.db import create_session_maker, tenant_context, tenant_session
from socle_core.errors import NotFound
from socle_devstack.stack import DATABASE, SERVICES, _with_database
from socle_tenancy.domain.audit.services import verify
from tests.support.fixtures import new_tenant


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
    tenant = new_tenant().id
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
    tenant = system_tenant(new_tenant().id, reason="test")
    maker = create_session_maker(service_engine)

    async def failing_action() -> None:
        async with tenant_session(maker, tenant) as session:
            await record(session, tenant, actor="user-1", action="devices.create")
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError, match="the action failed"):
        await failing_action()
    assert await _chain(database, tenant.uuid) == []
    # Nothing was consumed: the next entry is the chain's first.
    async with tenant_session(maker, tenant) as session:
        assert await record(session, tenant, actor="user-1", action="devices.create") == 1


async def test_a_detached_entry_is_kept_when_the_request_rolls_back(database, service_engine) -> None:
    tenant = system_tenant(new_tenant().id, reason="test")
    maker = create_session_maker(service_engine)

    async def refused_request() -> None:
        async with tenant_session(maker, None) as session:
            await session.execute(text("SELECT 1"))
            await record_detached(service_engine, tenant, actor="user-9", action="readings.read", target="tenant:other")
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await refused_request()
    rows = await _chain(database, tenant.uuid)
    assert [(r["seq"], r["action"], r["outcome"]) for r in rows] == [(1, "readings.read", "refused")]


async def test_another_tenants_chain_is_written_only_in_its_context(database, service_engine) -> None:
    """A unit of work of tenant A records for tenant B: refused, unless it opens B's context for the write."""
    a, b = (system_tenant(new_tenant().id, reason="test") for _ in range(2))
    maker = create_session_maker(service_engine)
    with pytest.raises(DBAPIError, match="writes only the chain of the tenant in context"):
        async with tenant_session(maker, a) as session:
            await record(session, b, actor="user-1", action="devices.shared")
    async with tenant_session(maker, a) as session:
        async with tenant_context(session, b):
            assert await record(session, b, actor="user-1", action="devices.shared") == 1
        # A's own context is back for the rest of the unit of work.
        assert await session.scalar(text("SELECT current_setting('app.tenant_id')")) == str(a)
        assert await record(session, a, actor="user-1", action="devices.shared") == 1
    assert [r["action"] for r in await _chain(database, b.uuid)] == ["devices.shared"]


async def test_events_without_a_tenant_go_to_the_platform_chain(database, service_engine) -> None:
    before = len(await _chain(database, PLATFORM_TENANT))
    seq = await record_detached(service_engine, None, actor="system:test", action="platform.checked", outcome="success")
    rows = await _chain(database, PLATFORM_TENANT)
    assert len(rows) == before + 1
    assert rows[-1]["seq"] == seq
    assert rows[-1]["action"] == "platform.checked"


async def test_an_entry_for_a_tenant_the_registry_does_not_know_is_not_found(database, service_engine) -> None:
    stray = uuid.uuid4()
    with pytest.raises(NotFound, match="dans le registre des locataires") as refused:
        await record_detached(service_engine, system_tenant(stray, reason="test"), actor="u", action="devices.create")
    assert refused.value.extensions == {"tenant_id": str(stray)}
    assert await _chain(database, stray) == []
    with pytest.raises(TypeError, match="give a TenantId"):
        await record_detached(service_engine, stray, actor="u", action="devices.create")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actor": " ", "action": "devices.create"}, "needs an actor"),
        ({"actor": "u\nforged: entry", "action": "devices.create"}, "needs an actor"),
        ({"actor": "u" * 256, "action": "devices.create"}, "needs an actor"),
        ({"actor": "u", "action": "Devices Create"}, "area.verb"),
        ({"actor": "u", "action": "devices"}, "area.verb"),
        ({"actor": "u", "action": "devices.create\n"}, "area.verb"),
        ({"actor": "u", "action": "devices.create", "outcome": "maybe"}, "outcome must be one of"),
        ({"actor": "u", "action": "devices.create", "target": "t" * 501}, "target is at most 500"),
        ({"actor": "u", "action": "devices.create", "details": {"blob": "x" * 16_400}}, "at most 16384 bytes"),
    ],
)
async def test_a_malformed_entry_is_refused_before_reaching_the_database(service_engine, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        await record_detached(service_engine, system_tenant(uuid.uuid4(), reason="test"), **kwargs)


async def test_another_service_cannot_read_write_or_erase_the_log_directly(service_engine) -> None:
    tenant = system_tenant(new_tenant().id, reason="test")
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


# -- every service's role, in plain SQL -----------------------------------------------------

_APPEND_SQL = text("SELECT tenancy.append_audit(:tenant, :actor, :action, :target, 'success', CAST(:details AS jsonb))")
#: Roles that may write any registered tenant's chain (tenancy's migration 0005, ADR 0007).
CHAIN_WRITERS = {"identity"}


@pytest.fixture(scope="module")
async def role_engines(database) -> AsyncIterator[dict[str, AsyncEngine]]:
    engines = {s: create_async_engine(database.url(s, "app"), pool_size=1, max_overflow=0) for s in SERVICES}
    yield engines
    for engine in engines.values():
        await engine.dispose()


async def _as(engine: AsyncEngine, context: uuid.UUID | None, statement: Any, **params: Any) -> Any:
    """One statement as a role, in a tenant context (none: empty), in a transaction of its own, committed."""
    async with engine.begin() as connection:
        await connection.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": "" if context is None else str(context)}
        )
        return (await connection.execute(statement, params)).all()


def _entry(tenant: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "actor": "mallory",
        "action": "grants.create",
        "target": None,
        "details": "{}",
    } | overrides


@pytest.mark.parametrize("service", SERVICES)
async def test_no_service_role_forges_entries_in_another_tenants_chain(database, role_engines, service) -> None:
    engine, tenancy = role_engines[service], role_engines["tenancy"]
    a, b = new_tenant().id, new_tenant().id
    await _as(tenancy, b, _APPEND_SQL, **_entry(b, actor="user-b", action="devices.create"))
    before = await _chain(database, b)

    # In A's context, or in none, B's chain is out of reach (except for the listed platform jobs).
    for context in (a, None):
        if service in CHAIN_WRITERS:
            await _as(engine, context, _APPEND_SQL, **_entry(b, actor="system:audit-feed", action="login.success"))
            continue
        with pytest.raises(DBAPIError, match="writes only the chain of the tenant in context") as refused:
            await _as(engine, context, _APPEND_SQL, **_entry(b))
        assert refused.value.orig.pgcode == "42501"  # type: ignore[union-attr]
    # A tenant the registry does not know gets no chain, even in its own context.
    unknown = uuid.uuid4()
    with pytest.raises(DBAPIError, match=f"no tenant {unknown} in the registry"):
        await _as(engine, unknown, _APPEND_SQL, **_entry(unknown))
    # Malformed entries are refused by the database itself, not only by socle_core.audit.
    for bad, message in (
        ({"action": "Grants Create"}, "must look like area.verb"),
        ({"action": "grants.create'); --"}, "must look like area.verb"),
        ({"actor": " "}, "actor must be 1 to 255 printable"),
        ({"actor": "admin\nseq 2: grants.revoke"}, "actor must be 1 to 255 printable"),
        ({"target": "t" * 501}, "target must be at most 500"),
        ({"details": '{"blob": "' + "x" * 16_400 + '"}'}, "details must be a JSON object of at most 16384"),
        ({"details": "[1, 2]"}, "details must be a JSON object"),
    ):
        with pytest.raises(DBAPIError, match=message):
            await _as(engine, a, _APPEND_SQL, **_entry(a, **bad))

    after = await _chain(database, b)
    forged = [r["action"] for r in after[len(before) :]]
    assert forged == (["login.success", "login.success"] if service in CHAIN_WRITERS else [])
    assert await _chain(database, unknown) == []
    verdict = await verify(create_session_maker(tenancy), [a, b, unknown])
    assert verdict.ok, verdict.findings


@pytest.mark.parametrize("service", SERVICES)
async def test_no_service_role_reads_other_tenants_heads_or_grants(database, role_engines, service) -> None:
    engine, tenancy = role_engines[service], role_engines["tenancy"]
    a, b, c = new_tenant().id, new_tenant().id, new_tenant().id
    for tenant in (a, b, c):
        await _as(tenancy, tenant, _APPEND_SQL, **_entry(tenant, actor="u", action="devices.create"))
    grant = uuid.uuid4()
    await _as(
        tenancy,
        a,
        text(
            "INSERT INTO tenancy.data_grants (id, grantor_tenant_id, grantee_tenant_id, dataset, reason, created_by, "
            "expires_at) VALUES (:g, :a, :b, 'readings', 'a study', 'user-a', now() + interval '1 day') RETURNING id"
        ),
        g=grant,
        a=a,
        b=b,
    )
    heads = text("SELECT chain_id FROM tenancy.audit_heads")
    grants = text("SELECT id FROM tenancy.data_grants WHERE id = :g")
    shared = text("SELECT tenancy.shared_with_current_tenant(:a, 'readings', NULL)")
    if service == "tenancy":
        # Its own chain's head only, in its own context; none without one. No grant of A and B.
        assert await _as(engine, c, heads) == [(c,)]
        assert await _as(engine, None, heads) == []
        assert await _as(engine, c, grants, g=grant) == []
        assert await _as(engine, None, grants, g=grant) == []
    else:
        for statement, params in ((heads, {}), (grants, {"g": grant})):
            with pytest.raises(DBAPIError, match="permission denied"):
                await _as(engine, c, statement, **params)
    # The grant is visible to its parties only: to B, through the shared-read function, to C not at all.
    assert await _as(engine, c, shared, a=a) == [(False,)]
    assert await _as(engine, None, shared, a=a) == [(False,)]
    assert await _as(engine, b, shared, a=a) == [(True,)]
