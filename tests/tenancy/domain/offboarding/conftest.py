"""Two onboarded communes with devices and readings, and the environment of ``socle-tenants offboard``.

Two communes of the pool (``commune_pool``): one is offboarded, the other keeps its data. No other test uses them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import asyncpg
import httpx
import pytest

from socle_core.auth import system_tenant
from socle_devstack.stack import SERVICES
from socle_tenancy.app import create_app
from socle_timeseries.store import Reading, store_readings
from tests.tenancy.conftest import DEMO_SIREN
from tests.tenancy.domain.declarations.serving import serve


class Codes(NamedTuple):
    """INSEE codes of the commune offboarded and of the one that keeps its data."""

    leaving: str
    staying: str


@pytest.fixture(scope="session")
def codes(commune_pool) -> Codes:
    return Codes(commune_pool.take().insee, commune_pool.take().insee)


def dsn(database, service: str) -> str:
    return database.url(service, "app").replace("postgresql+asyncpg://", "postgresql://")


async def _insert(database, tenant_id: str, tag: str) -> None:
    """Two devices and three readings of one of them, written by the app roles in the tenant's context."""
    tenant = uuid.UUID(tenant_id)
    devices = [uuid.uuid4(), uuid.uuid4()]
    connection = await asyncpg.connect(dsn(database, "ingestion"))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
            await connection.executemany(
                "INSERT INTO ingestion.devices (tenant_id, id, external_id, name, kind) VALUES ($1, $2, $3, $4, $5)",
                [(tenant, d, f"{tag}-gauge-{i}", f"Gauge {i} {tag}", "flood_gauge") for i, d in enumerate(devices)],
            )
            # Readings go in through the write contract, as ingestion stores them.
            start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
            readings = [
                Reading(devices[0], "water_level_m", start + dt.timedelta(minutes=m), 1.5 + m, unit="m")
                for m in range(3)
            ]
            await store_readings(connection, system_tenant(tenant, reason="offboarding test data"), readings)
    finally:
        await connection.close()


async def _count(database, service: str, table: str, tenant_id: str) -> int:
    connection = await asyncpg.connect(dsn(database, service))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
            return int(
                await connection.fetchval(
                    f"SELECT count(*) FROM {service}.{table} WHERE tenant_id = $1", uuid.UUID(tenant_id)
                )
            )
    finally:
        await connection.close()


def count_rows(database, service: str, table: str, tenant_id: str) -> int:
    return asyncio.run(_count(database, service, table, tenant_id))


@pytest.fixture
def tenancy_url(tenancy_settings) -> Iterator[str]:
    with serve(create_app(tenancy_settings())) as url:
        yield url


def first_admin_email(insee: str) -> str:
    return f"mairie@c{insee}.test.socle.fr"


def _onboard(api: str, operator: dict[str, str], insee: str) -> dict[str, Any]:
    response = httpx.post(
        f"{api}/v1/tenants/{insee}/onboarding",
        json={"first_admin_email": first_admin_email(insee), "email_domains": [f"c{insee}.test.socle.fr"]},
        headers=operator,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["tenant"])


@pytest.fixture
def communes(tenancy_url, operator, database, codes) -> dict[str, dict[str, Any]]:
    """The two communes, onboarded, each with its own devices and readings (added once)."""
    registered = httpx.post(f"{tenancy_url}/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator, timeout=30)
    assert registered.status_code in (200, 201), registered.text
    found = {}
    for insee in codes:
        current = httpx.get(f"{tenancy_url}/v1/tenants/{insee}", headers=operator, timeout=30)
        tenant = current.json()["tenant"] if current.status_code == 200 else None
        if tenant is None or tenant["status"] == "invited":
            tenant = _onboard(tenancy_url, operator, insee)
        if tenant["status"] == "active" and count_rows(database, "ingestion", "devices", tenant["id"]) == 0:
            asyncio.run(_insert(database, tenant["id"], f"c{insee}"))
        found[insee] = tenant
    return found


@pytest.fixture
def offboard_env(tenancy_url, keycloak, credentials, database) -> dict[str, str]:
    """What the command reads: the API, the platform client, every service's app-role URL."""
    env = {
        "SOCLE_TENANTS_API": tenancy_url,
        "SOCLE_TENANTS_ISSUER": keycloak.issuer,
        "SOCLE_TENANTS_AUTH": "client-credentials",
        "SOCLE_TENANTS_CLIENT_SECRET": credentials["platform_client"],
    }
    env.update({f"SOCLE_{s.upper()}_DATABASE_URL": database.url(s, "app") for s in SERVICES})
    return env
