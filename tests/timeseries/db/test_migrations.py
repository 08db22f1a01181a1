"""Migration 0003 on a database that already holds readings of the first table (0001).

A scratch database of the test server gets the same roles' schemas and the tenancy
migrations, timeseries up to 0002 and two tenants' readings in the old shape; the upgrade
to head must carry every reading over into its tenant's series, partitions and latest value.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg

from socle_core.migrations import upgrade
from socle_core.provisioning import ServiceRoles, create_database, provision_service
from socle_devstack.stack import REPO_ROOT, _with_database

SCRATCH = "socle_migration_0003"


def migrations(service: str):
    return REPO_ROOT / "services" / service / "src" / f"socle_{service}" / "db" / "migrations"


def url(database, service: str, kind: str) -> str:
    return _with_database(database.url(service, kind), SCRATCH)


async def in_context(dsn: str, tenant: uuid.UUID, sql: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
            return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def test_the_upgrade_carries_the_first_tables_readings_over_tenant_by_tenant(database) -> None:
    await create_database(database.admin_dsn, SCRATCH)
    admin = _with_database(database.admin_dsn, SCRATCH)
    for service in ("tenancy", "ingestion", "timeseries"):
        roles = ServiceRoles.for_service(service)
        await provision_service(
            admin,
            SCRATCH,
            roles,
            database.credentials[f"{service}_migrator"],
            database.credentials[f"{service}_app"],
        )
    # Alembic runs its own event loop: in a thread.
    await asyncio.to_thread(upgrade, migrations("tenancy"), url(database, "tenancy", "owner"), "tenancy")
    await asyncio.to_thread(
        upgrade, migrations("timeseries"), url(database, "timeseries", "owner"), "timeseries", "0002"
    )
    a, b, device = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old = dt.datetime(2025, 3, 14, 9, 0, tzinfo=dt.UTC)  # long before the months the migration makes
    app = url(database, "timeseries", "app")
    for tenant, values in ((a, [1.0, 2.0, 3.0]), (b, [7.0])):
        await in_context(
            app,
            tenant,
            "INSERT INTO timeseries.readings (tenant_id, device_id, metric, time, value) "
            "SELECT $1, $2, 'level', $3::timestamptz + make_interval(hours => i::integer), v "
            "FROM unnest($4::float8[]) WITH ORDINALITY AS x(v, i)",
            tenant,
            device,
            old,
            values,
        )

    await asyncio.to_thread(upgrade, migrations("timeseries"), url(database, "timeseries", "owner"), "timeseries")

    rows = await in_context(
        app,
        a,
        "SELECT s.device_id, s.metric, r.time, r.value, c.relname FROM timeseries.readings r "
        "JOIN timeseries.series s ON s.tenant_id = r.tenant_id AND s.id = r.series_id "
        "JOIN pg_class c ON c.oid = r.tableoid ORDER BY r.time",
    )
    assert [(r["device_id"], r["metric"], r["value"], r["relname"]) for r in rows] == [
        (device, "level", v, "readings_2025_03") for v in (1.0, 2.0, 3.0)
    ]
    [latest] = await in_context(app, a, "SELECT time, value FROM timeseries.latest")
    assert (latest["time"], latest["value"]) == (old + dt.timedelta(hours=3), 3.0)
    assert [r["value"] for r in await in_context(app, b, "SELECT value FROM timeseries.readings")] == [7.0]
    # The months from the oldest reading to three months ahead all exist, each under RLS.
    connection = await asyncpg.connect(app.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        partitions = await connection.fetch(
            "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity AS forced FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'timeseries.readings'::regclass ORDER BY 1"
        )
        old_table = await connection.fetchval("SELECT to_regclass('timeseries.readings_v1')")
    finally:
        await connection.close()
    now = dt.datetime.now(dt.UTC)
    expected_last = (now.year * 12 + now.month - 1) + 3
    last = f"readings_{expected_last // 12}_{expected_last % 12 + 1:02d}"
    assert partitions[0]["relname"] == "readings_2025_03"
    assert partitions[-1]["relname"] == last
    assert len(partitions) == expected_last - (2025 * 12 + 2) + 1
    assert all(p["forced"] for p in partitions)
    assert old_table is None
