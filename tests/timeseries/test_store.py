"""The write contract (``socle_timeseries.store``) on the real PostgreSQL, as the application roles connect.

Each test uses its own tenants; readings are written by ``store_readings`` in a transaction
of the timeseries or the ingestion application role, and read back through row-level security.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from socle_core.auth import system_tenant
from socle_core.tenant import TenantId
from socle_timeseries.store import (
    OutsideStoredPeriods,
    Quality,
    Reading,
    StoreResult,
    TenantContextMismatch,
    create_partitions,
    store_readings,
)
from tests.support.fixtures import registered_commune

NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def dsn(database, service: str) -> str:
    return database.url(service, "app").replace("postgresql+asyncpg://", "postgresql://")


def tenant() -> TenantId:
    return system_tenant(uuid.uuid4(), reason="timeseries store test")


@pytest.fixture
async def app(database) -> AsyncIterator[asyncpg.Connection]:
    """The timeseries application role."""
    connection = await asyncpg.connect(dsn(database, "timeseries"))
    yield connection
    await connection.close()


@pytest.fixture
async def ingestion(database) -> AsyncIterator[asyncpg.Connection]:
    """The ingestion application role: the one that writes readings in production."""
    connection = await asyncpg.connect(dsn(database, "ingestion"))
    yield connection
    await connection.close()


def batch(devices: list[uuid.UUID], minutes: range, metric: str = "water_level_m") -> list[Reading]:
    return [Reading(d, metric, NOW - dt.timedelta(minutes=m), float(m), unit="m") for d in devices for m in minutes]


async def store(connection: asyncpg.Connection, who: TenantId, readings: list[Reading]) -> StoreResult:
    async with connection.transaction():
        return await store_readings(connection, who, readings)


async def in_context(connection: asyncpg.Connection, who: TenantId | None, sql: str, *args: object) -> object:
    async with connection.transaction():
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(who) if who else "")
        return await connection.fetchval(sql, *args)


async def test_a_batch_is_stored_once_and_the_same_batch_again_is_all_duplicates(ingestion) -> None:
    who = tenant()
    readings = batch([uuid.uuid4() for _ in range(10)], range(100))
    assert len(readings) == 1000

    first = await store(ingestion, who, readings)
    again = await store(ingestion, who, readings)

    assert first == StoreResult(inserted=1000, duplicates=0, series_created=10, latest_moved=10)
    assert again == StoreResult(inserted=0, duplicates=1000, series_created=0, latest_moved=0)
    assert await in_context(ingestion, who, "SELECT count(*) FROM timeseries.readings") == 1000
    assert await in_context(ingestion, who, "SELECT count(*) FROM timeseries.series") == 10
    units = await in_context(ingestion, who, "SELECT array_agg(DISTINCT unit) FROM timeseries.series")
    assert units == ["m"]


async def test_a_mixed_batch_counts_new_stored_and_repeated_readings_exactly(ingestion) -> None:
    who = tenant()
    device = uuid.uuid4()
    await store(ingestion, who, batch([device], range(50)))
    # 20 already stored, 30 new, and 5 of the new ones twice in the same batch (the first one wins).
    mixed = batch([device], range(30, 80)) + [
        Reading(device, "water_level_m", NOW - dt.timedelta(minutes=m), -1.0) for m in range(60, 65)
    ]

    result = await store(ingestion, who, mixed)

    assert (result.inserted, result.duplicates, result.series_created) == (30, 25, 0)
    assert await in_context(ingestion, who, "SELECT count(*) FROM timeseries.readings") == 80
    assert await in_context(ingestion, who, "SELECT count(*) FROM timeseries.readings WHERE value < 0") == 0


async def test_the_latest_value_moves_forward_with_newer_data_and_never_back_with_late_data(ingestion) -> None:
    who = tenant()
    device = uuid.uuid4()
    latest = "SELECT time, value, quality FROM timeseries.latest"

    async def latest_row() -> tuple[dt.datetime, float, int]:
        async with ingestion.transaction():
            await ingestion.execute("SELECT set_config('app.tenant_id', $1, true)", str(who))
            row = await ingestion.fetchrow(latest)
            assert row is not None
            return row["time"], row["value"], row["quality"]

    def at(minutes: int, value: float, quality: Quality = Quality.GOOD) -> Reading:
        return Reading(device, "fill_pct", NOW - dt.timedelta(minutes=minutes), value, quality)

    await store(ingestion, who, [at(10, 10.0)])
    assert await latest_row() == (NOW - dt.timedelta(minutes=10), 10.0, 0)

    late = await store(ingestion, who, [at(30, 30.0), at(20, 20.0)])  # a gateway's backlog
    assert (late.inserted, late.latest_moved) == (2, 0)
    assert await latest_row() == (NOW - dt.timedelta(minutes=10), 10.0, 0)

    newer = await store(ingestion, who, [at(40, 40.0), at(5, 5.0, Quality.ESTIMATED), at(7, 7.0)])
    assert (newer.inserted, newer.latest_moved) == (3, 1)
    assert await latest_row() == (NOW - dt.timedelta(minutes=5), 5.0, int(Quality.ESTIMATED))
    assert await in_context(ingestion, who, "SELECT count(*) FROM timeseries.readings") == 6


async def test_a_tenants_context_cannot_write_rows_carrying_another_tenants_id(ingestion, app) -> None:
    a, b = tenant(), tenant()
    await store(ingestion, b, batch([uuid.uuid4()], range(1)))
    b_series = await in_context(ingestion, b, "SELECT id FROM timeseries.series")
    writes = [
        ("INSERT INTO timeseries.series (tenant_id, device_id, metric) VALUES ($1, gen_random_uuid(), 'x')", ()),
        ("INSERT INTO timeseries.readings (tenant_id, series_id, time, value) VALUES ($1, $2, now(), 1)", (b_series,)),
        ("INSERT INTO timeseries.latest (tenant_id, series_id, time, value) VALUES ($1, $2, now(), 1)", (b_series,)),
    ]
    for connection in (ingestion, app):
        for sql, args in writes:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await in_context(connection, a, sql, b.uuid, *args)

    # The contract itself refuses to switch a transaction bound to A over to B.
    async with ingestion.transaction():
        await ingestion.execute("SELECT set_config('app.tenant_id', $1, true)", str(a))
        with pytest.raises(TenantContextMismatch):
            await store_readings(ingestion, b, batch([uuid.uuid4()], range(1)))
    assert await in_context(ingestion, b, "SELECT count(*) FROM timeseries.readings") == 1


async def test_a_tenant_reads_none_of_another_tenants_series_readings_or_latest_even_through_a_partition(
    ingestion, app
) -> None:
    a, b = tenant(), tenant()
    await store(ingestion, a, batch([uuid.uuid4()], range(3)))
    await store(ingestion, b, batch([uuid.uuid4()], range(3)))
    name = await in_context(
        app, b, "SELECT c.relname FROM timeseries.readings r JOIN pg_class c ON c.oid = r.tableoid WHERE time = $1", NOW
    )
    assert isinstance(name, str)
    assert name.startswith("readings_")
    partition = f"timeseries.{name}"

    for table in ("timeseries.series", "timeseries.readings", "timeseries.latest", partition):
        query = f"SELECT count(*) FROM {table} WHERE tenant_id = $1"
        assert await in_context(app, a, query, b.uuid) == 0, table
        assert await in_context(app, a, query, a.uuid) > 0, table
        assert await in_context(app, None, f"SELECT count(*) FROM {table}") == 0, table
    # Direct writes into a partition with A's context, as the timeseries role (which has privileges there).
    series = await in_context(app, b, "SELECT id FROM timeseries.series")
    insert = f"INSERT INTO {partition} (tenant_id, series_id, time, value) VALUES ($1, $2, $3, 1)"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await in_context(app, a, insert, b.uuid, series, NOW - dt.timedelta(seconds=1))
    async with app.transaction():
        await app.execute("SELECT set_config('app.tenant_id', $1, true)", str(a))
        assert await app.execute(f"UPDATE {partition} SET value = -1 WHERE tenant_id = $1", b.uuid) == "UPDATE 0"
        assert await app.execute(f"DELETE FROM {partition} WHERE tenant_id = $1", b.uuid) == "DELETE 0"
    assert await in_context(app, b, f"SELECT count(*) FROM {partition} WHERE value >= 0") >= 1
    # The ingestion role writes through the parent only: a partition is not its to reach.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await in_context(ingestion, b, f"SELECT count(*) FROM {partition}")


async def test_every_partition_carries_rls_enabled_forced_and_its_parents_policies(app) -> None:
    await create_partitions(app)
    rows = await app.fetch(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               ARRAY(SELECT p.polname || ':' || pg_get_expr(p.polqual, p.polrelid) || ':' ||
                            COALESCE(pg_get_expr(p.polwithcheck, p.polrelid), '')
                     FROM pg_policy p WHERE p.polrelid = c.oid ORDER BY p.polname) AS policies
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'timeseries.readings'::regclass
        """
    )
    parent = await app.fetchval(
        """SELECT ARRAY(SELECT p.polname || ':' || pg_get_expr(p.polqual, p.polrelid) || ':' ||
                               COALESCE(pg_get_expr(p.polwithcheck, p.polrelid), '')
                        FROM pg_policy p WHERE p.polrelid = 'timeseries.readings'::regclass ORDER BY p.polname)"""
    )
    assert len(parent) == 2
    assert len(rows) >= 4
    for row in rows:
        assert row["relrowsecurity"], row["relname"]
        assert row["relforcerowsecurity"], row["relname"]
        assert row["policies"] == parent, row["relname"]
    default = await app.fetchval(
        "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'timeseries.readings'::regclass AND partdefid <> 0"
    )
    assert default == 0


async def test_the_partition_job_creates_months_ahead_and_is_idempotent(app, ingestion) -> None:
    at = dt.datetime(2031, 1, 17, 8, 30, tzinfo=dt.UTC)

    made = await create_partitions(app, months_ahead=3, now=at)
    again = await create_partitions(app, months_ahead=3, now=at)

    assert made == ["readings_2031_01", "readings_2031_02", "readings_2031_03", "readings_2031_04"]
    assert again == []
    bounds = await app.fetchval(
        "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = 'timeseries.readings_2031_03'::regclass"
    )
    assert bounds == "FOR VALUES FROM ('2031-03-01 00:00:00+00') TO ('2031-04-01 00:00:00+00')"
    who = tenant()
    edge = [
        Reading(uuid.uuid4(), "kwh", dt.datetime(2031, 3, 31, 23, 59, 59, tzinfo=dt.UTC), 1.0),
        Reading(uuid.uuid4(), "kwh", dt.datetime(2031, 4, 1, tzinfo=dt.UTC), 2.0),
    ]
    assert (await store(ingestion, who, edge)).inserted == 2
    where = await in_context(
        ingestion,
        who,
        "SELECT array_agg(c.relname::text ORDER BY time) FROM timeseries.readings r "
        "JOIN pg_class c ON c.oid = r.tableoid",
    )
    assert where == ["readings_2031_03", "readings_2031_04"]
    with pytest.raises(asyncpg.InvalidParameterValueError, match="between 1 and 120"):
        await app.fetch("SELECT timeseries.create_readings_partitions(current_date, 500)")
    # Only the timeseries role runs the job: the ingestion role cannot create partitions.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await create_partitions(ingestion, now=at)


async def test_a_reading_no_partition_covers_refuses_the_batch_with_a_clear_error(ingestion) -> None:
    who = tenant()
    device = uuid.uuid4()
    readings = [*batch([device], range(3)), Reading(device, "water_level_m", dt.datetime(1990, 5, 1, tzinfo=dt.UTC), 1)]

    with pytest.raises(OutsideStoredPeriods) as refused:
        await store(ingestion, who, readings)

    assert refused.value.status == 422
    assert refused.value.detail.startswith("un relevé du lot (du 1990-05-01T00:00:00+00:00 au ")
    assert "hors des périodes de stockage" in refused.value.detail
    assert refused.value.errors == [{"location": "body", "field": "body.time", "detail": refused.value.detail}]
    assert await in_context(ingestion, who, "SELECT count(*) FROM timeseries.readings") == 0  # nothing of the batch


async def test_the_contract_takes_a_sqlalchemy_session_and_refuses_to_run_outside_a_transaction(
    database, ingestion
) -> None:
    who = tenant()
    engine = create_async_engine(database.url("ingestion", "app"))
    try:
        async with AsyncSession(engine) as session, session.begin():
            result = await store_readings(session, who, batch([uuid.uuid4()], range(5)))
        assert result.inserted == 5
    finally:
        await engine.dispose()
    assert await in_context(ingestion, who, "SELECT count(*) FROM timeseries.readings") == 5
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        await store_readings(ingestion, who, batch([uuid.uuid4()], range(1)))


async def test_the_ingestion_role_cannot_delete_readings(ingestion) -> None:
    who = tenant()
    await store(ingestion, who, batch([uuid.uuid4()], range(2)))
    for table in ("series", "readings", "latest"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await in_context(ingestion, who, f"DELETE FROM timeseries.{table}")


async def test_a_grant_of_one_device_shows_its_series_readings_and_latest_to_the_grantee_read_only(
    database, ingestion, app
) -> None:
    grantor, grantee = await registered_commune(database), await registered_commune(database)
    a = system_tenant(grantor.id, reason="timeseries store test")
    b = system_tenant(grantee.id, reason="timeseries store test")
    shared, private = uuid.uuid4(), uuid.uuid4()
    await store(ingestion, a, batch([shared, private], range(4)))
    partition = "timeseries." + str(
        await in_context(
            app, a, "SELECT min(c.relname) FROM timeseries.readings r JOIN pg_class c ON c.oid = r.tableoid"
        )
    )
    in_partition = await in_context(app, a, f"SELECT count(*) FROM {partition} WHERE tenant_id = $1", a.uuid)
    tables = ("timeseries.series", "timeseries.readings", "timeseries.latest", partition)
    visible = {t: f"SELECT count(*) FROM {t} WHERE tenant_id = $1" for t in tables}
    assert [await in_context(app, b, visible[t], a.uuid) for t in tables] == [0, 0, 0, 0]

    tenancy = await asyncpg.connect(dsn(database, "tenancy"))
    try:
        grant = await in_context(
            tenancy,
            a,
            "INSERT INTO tenancy.data_grants (id, grantor_tenant_id, grantee_tenant_id, dataset, resource_id, reason, "
            "created_by, expires_at) VALUES (gen_random_uuid(), $1, $2, 'readings', $3, 'suivi des crues', 'test', "
            "now() + interval '1 day') RETURNING id",
            a.uuid,
            b.uuid,
            shared,
        )
        on_shared = await in_context(app, b, "SELECT count(*) FROM timeseries.series WHERE device_id = $1", shared)
        assert on_shared == 1
        assert [await in_context(app, b, visible[t], a.uuid) for t in tables] == [1, 4, 1, in_partition // 2]
        async with app.transaction():  # shared rows stay read-only for the grantee
            await app.execute("SELECT set_config('app.tenant_id', $1, true)", str(b))
            assert await app.execute("UPDATE timeseries.readings SET value = -1 WHERE tenant_id = $1", a.uuid) == (
                "UPDATE 0"
            )
            assert await app.execute(f"DELETE FROM {partition} WHERE tenant_id = $1", a.uuid) == "DELETE 0"
            assert await app.execute("UPDATE timeseries.latest SET value = -1 WHERE tenant_id = $1", a.uuid) == (
                "UPDATE 0"
            )
        await in_context(
            tenancy,
            a,
            "UPDATE tenancy.data_grants SET revoked_at = now(), revoked_by = 'test' WHERE id = $1 RETURNING id",
            grant,
        )
        assert [await in_context(app, b, visible[t], a.uuid) for t in tables] == [0, 0, 0, 0]
    finally:
        await tenancy.close()
