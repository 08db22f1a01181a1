"""Data-sharing grants by API and in RLS, on the real app, PostgreSQL and Keycloak.

Commune A shares the readings of one of its devices with the EPCI until tomorrow: the EPCI
(through the timeseries and ingestion application roles) reads exactly those rows and can
change none; after revocation or expiry it reads nothing; commune C never sees anything; and
commune B cannot share A's data, neither by API nor in SQL.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_devstack.stack import DATABASE, _with_database
from tests.tenancy.conftest import assert_problem

pytestmark = pytest.mark.usefixtures("demo_epci")


@dataclass(frozen=True)
class Party:
    id: uuid.UUID
    key: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
async def engines(database) -> AsyncIterator[dict[str, AsyncEngine]]:
    engines = {s: create_async_engine(database.url(s, "app")) for s in ("tenancy", "ingestion", "timeseries")}
    yield engines
    for engine in engines.values():
        await engine.dispose()


def _token(kc_admin, role: str, key: str, tenant: uuid.UUID) -> dict[str, str]:
    client = kc_admin.create_client(roles=(role,), organization=(key, tenant))
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


async def _commune(engines, kc_admin, epci_id: uuid.UUID, status: str = "active") -> Party:
    """A commune in the registry (no Keycloak organization needed), and its admin's token."""
    tenant = uuid.uuid4()
    while True:
        insee = f"98{random.randint(0, 999):03d}"  # a test INSEE code
        try:
            async with engines["tenancy"].begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO tenancy.tenants (id, kind, key, name, insee_code, parent_id, status) "
                        "VALUES (:id, 'commune', :key, :name, :insee, :parent, :status)"
                    ),
                    {
                        "id": tenant,
                        "key": f"commune-{insee}",
                        "name": f"Test {insee}",
                        "insee": insee,
                        "parent": epci_id,
                        "status": status,
                    },
                )
            break
        except IntegrityError:
            continue
    return Party(tenant, f"commune-{insee}", _token(kc_admin, "commune-admin", f"commune-{insee}", tenant))


@pytest.fixture
async def parties(engines, kc_admin, demo_epci) -> dict[str, Party]:
    epci_id = uuid.UUID(demo_epci["tenant"]["id"])
    epci = Party(
        epci_id, demo_epci["tenant"]["key"], _token(kc_admin, "epci-admin", demo_epci["tenant"]["key"], epci_id)
    )
    return {
        "epci": epci,
        "a": await _commune(engines, kc_admin, epci_id),
        "b": await _commune(engines, kc_admin, epci_id),
        "c": await _commune(engines, kc_admin, epci_id),
    }


#: The readings of one device (readings name their series, the series its device).
OF_DEVICE = "series_id IN (SELECT id FROM timeseries.series WHERE device_id = :d)"


async def _in(engine: AsyncEngine, tenant: uuid.UUID, sql: str, **params: Any) -> Any:
    """Run one statement as a service's application role in a tenant's context; return its result rows or count."""
    async with engine.begin() as connection:
        await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        result = await connection.execute(text(sql), params)
        return result.all() if result.returns_rows else result.rowcount


@pytest.fixture
async def devices_of_a(engines, parties) -> tuple[uuid.UUID, uuid.UUID]:
    """Two devices of commune A, each with three readings."""
    a = parties["a"].id
    shared, private = uuid.uuid4(), uuid.uuid4()
    for device in (shared, private):
        await _in(
            engines["ingestion"],
            a,
            "INSERT INTO ingestion.devices (tenant_id, id, external_id, name, kind) "
            "VALUES (:t, :d, :e, 'gauge', 'flood')",
            t=a,
            d=device,
            e=f"eui-{device.hex[:12]}",
        )
        [(series,)] = await _in(
            engines["timeseries"],
            a,
            "INSERT INTO timeseries.series (tenant_id, device_id, metric, unit) "
            "VALUES (:t, :d, 'level_cm', 'cm') RETURNING id",
            t=a,
            d=device,
        )
        for minute in range(3):
            await _in(
                engines["timeseries"],
                a,
                "INSERT INTO timeseries.readings (tenant_id, series_id, time, value) "
                "VALUES (:t, :s, now() - make_interval(mins => :m), :v)",
                t=a,
                s=series,
                m=minute,
                v=10.0 + minute,
            )
    return shared, private


def _tomorrow() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()


async def _grant(
    tenancy, grantor: Party, grantee: Party, device: uuid.UUID | None, change: dict[str, Any] | None = None
) -> Any:
    body = {
        "grantee": grantee.key,
        "dataset": "readings",
        "resource_id": str(device) if device else None,
        "reason": "flood monitoring of the Vidourle by the EPCI",
        "expires_at": _tomorrow(),
        **(change or {}),
    }
    return await tenancy.post("/v1/grants", json=body, headers=grantor.headers)


async def _readings_seen(engines, tenant: uuid.UUID) -> set[tuple[uuid.UUID, float]]:
    rows = await _in(
        engines["timeseries"],
        tenant,
        "SELECT s.device_id, r.value FROM timeseries.readings r "
        "JOIN timeseries.series s ON s.tenant_id = r.tenant_id AND s.id = r.series_id",
    )
    return {(r.device_id, r.value) for r in rows}


async def _chain(engines, tenant: uuid.UUID) -> list[Any]:
    return list(
        await _in(
            engines["tenancy"],
            tenant,
            "SELECT seq, actor, action, target, details FROM tenancy.audit_entries WHERE tenant_id = :t ORDER BY seq",
            t=tenant,
        )
    )


async def test_the_epci_reads_exactly_the_shared_readings_until_revoked(
    tenancy, engines, parties, devices_of_a
) -> None:
    a, epci, c = parties["a"], parties["epci"], parties["c"]
    shared, _private = devices_of_a
    assert await _readings_seen(engines, epci.id) & {(shared, 10.0)} == set()

    response = await _grant(tenancy, a, epci, shared)
    assert response.status_code == 201, response.text
    grant = response.json()
    assert (grant["grantor_tenant_id"], grant["grantee_tenant_id"]) == (str(a.id), str(epci.id))
    assert (grant["dataset"], grant["resource_id"], grant["status"]) == ("readings", str(shared), "live")

    seen = {r for r in await _readings_seen(engines, epci.id) if r[0] in devices_of_a}
    assert seen == {(shared, 10.0), (shared, 11.0), (shared, 12.0)}
    # Read, never write: the shared rows are out of reach of UPDATE and DELETE.
    updated = await _in(
        engines["timeseries"], epci.id, f"UPDATE timeseries.readings SET value = 0 WHERE {OF_DEVICE}", d=shared
    )
    deleted = await _in(engines["timeseries"], epci.id, f"DELETE FROM timeseries.readings WHERE {OF_DEVICE}", d=shared)
    assert (updated, deleted) == (0, 0)
    assert await _readings_seen(engines, a.id) >= {(shared, 10.0), (shared, 11.0), (shared, 12.0)}
    # Readings were shared, not the device registry.
    assert await _in(engines["ingestion"], epci.id, "SELECT id FROM ingestion.devices WHERE id = :d", d=shared) == []
    # A third commune sees nothing of it.
    assert {r for r in await _readings_seen(engines, c.id) if r[0] in devices_of_a} == set()

    revoked = await tenancy.post(
        f"/v1/grants/{grant['id']}/revoke", json={"reason": "end of the study"}, headers=a.headers
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    again = await tenancy.post(f"/v1/grants/{grant['id']}/revoke", headers=a.headers)
    assert again.status_code == 200, again.text
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert {r for r in await _readings_seen(engines, epci.id) if r[0] in devices_of_a} == set()

    # Both chains record the creation and the revocation (once), with who and why.
    for party, side in ((a, "grantor"), (epci, "grantee")):
        entries = [e for e in await _chain(engines, party.id) if e.target == f"grant:{grant['id']}"]
        assert [e.action for e in entries] == ["grants.create", "grants.revoke"]
        assert entries[0].details["side"] == side
        assert entries[0].details["reason"] == "flood monitoring of the Vidourle by the EPCI"
        assert entries[1].details["reason"] == "end of the study"
        assert entries[0].actor == grant["created_by"]


async def test_an_expired_grant_shares_nothing(tenancy, database, engines, parties, devices_of_a) -> None:
    a, epci = parties["a"], parties["epci"]
    response = await _grant(tenancy, a, epci, None, {"dataset": "devices"})
    assert response.status_code == 201, response.text
    grant = response.json()
    assert {r.id for r in await _in(engines["ingestion"], epci.id, "SELECT id FROM ingestion.devices")} >= set(
        devices_of_a
    )
    admin = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:  # time passes: the grant's end is now behind us (by hand: the table lets only a revocation change)
        await admin.execute("SET session_replication_role = replica")
        await admin.execute(
            "UPDATE tenancy.data_grants SET created_at = now() - interval '2 days', "
            "expires_at = now() - interval '1 day' WHERE id = $1",
            uuid.UUID(grant["id"]),
        )
    finally:
        await admin.close()
    assert {r.id for r in await _in(engines["ingestion"], epci.id, "SELECT id FROM ingestion.devices")} & set(
        devices_of_a
    ) == set()
    listed = (await tenancy.get("/v1/grants", params={"status": "expired"}, headers=a.headers)).json()
    assert [g["id"] for g in listed["items"]] == [grant["id"]]


async def test_a_commune_cannot_share_another_communes_data(tenancy, engines, parties, devices_of_a) -> None:
    a, b, epci = parties["a"], parties["b"], parties["epci"]
    shared, _ = devices_of_a
    # By API, B's grant is a grant of B's data: naming A's device shares nothing of A's.
    response = await _grant(tenancy, b, epci, shared)
    assert response.status_code == 201, response.text
    assert response.json()["grantor_tenant_id"] == str(b.id)
    assert {r for r in await _readings_seen(engines, epci.id) if r[0] == shared} == set()
    # In SQL, B cannot write a grant whose grantor is A.
    with pytest.raises(DBAPIError, match="row-level security"):
        await _in(
            engines["tenancy"],
            b.id,
            "INSERT INTO tenancy.data_grants (id, grantor_tenant_id, grantee_tenant_id, dataset, reason, created_by, "
            "expires_at) VALUES (gen_random_uuid(), :a, :e, 'readings', 'forged', 'b', now() + interval '1 day')",
            a=a.id,
            e=epci.id,
        )
    assert {r for r in await _readings_seen(engines, epci.id) if r[0] == shared} == set()


async def test_grants_are_seen_by_both_parties_only_and_revoked_by_the_grantor_only(tenancy, parties) -> None:
    a, c, epci = parties["a"], parties["c"], parties["epci"]
    grant = (await _grant(tenancy, a, epci, None)).json()
    as_grantee = (await tenancy.get("/v1/grants", params={"side": "grantee"}, headers=epci.headers)).json()
    assert grant["id"] in [g["id"] for g in as_grantee["items"]]
    as_grantor = (await tenancy.get("/v1/grants", params={"side": "grantor", "limit": 1}, headers=a.headers)).json()
    assert (as_grantor["total"], [g["id"] for g in as_grantor["items"]]) == (1, [grant["id"]])
    assert (await tenancy.get(f"/v1/grants/{grant['id']}", headers=epci.headers)).json() == grant

    assert (await tenancy.get("/v1/grants", headers=c.headers)).json()["total"] == 0
    body = assert_problem(await tenancy.get(f"/v1/grants/{grant['id']}", headers=c.headers), 404, "not-found")
    assert grant["id"] in body["detail"]
    assert_problem(await tenancy.post(f"/v1/grants/{grant['id']}/revoke", headers=c.headers), 404, "not-found")
    assert_problem(await tenancy.post(f"/v1/grants/{grant['id']}/revoke", headers=epci.headers), 403, "forbidden")
    assert (await tenancy.get(f"/v1/grants/{grant['id']}", headers=a.headers)).json()["status"] == "live"
    refused = (await tenancy.get("/v1/audit/entries", params={"action": "grants"}, headers=c.headers)).json()["items"]
    assert [(e["action"], e["outcome"]) for e in refused] == [("grants.revoke", "refused"), ("grants.read", "refused")]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"expires_at": "2020-01-01T00:00:00+00:00"}, 422, "body.expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, 422, "body.expires_at"),
        ({"dataset": "alerts"}, 422, "body.dataset"),
        ({"reason": "x"}, 422, "body.reason"),
        ({"grantor": "commune-30321"}, 422, None),
        ({"grantee": "commune-00000"}, 404, None),
    ],
)
async def test_bad_grants_are_clear_errors_and_create_nothing(tenancy, parties, change, status, field) -> None:
    a, epci = parties["a"], parties["epci"]
    body = assert_problem(
        await _grant(tenancy, a, epci, None, change), status, "validation-error" if status == 422 else "not-found"
    )
    if field:
        assert field in {e["field"] for e in body["errors"]}, body
    assert (await tenancy.get("/v1/grants", headers=a.headers)).json()["total"] == 0


async def test_a_tenant_cannot_grant_itself_and_agents_cannot_grant(tenancy, kc_admin, parties) -> None:
    a = parties["a"]
    body = assert_problem(await _grant(tenancy, a, a, None), 422, "validation-error")
    assert body["errors"][0]["field"] == "body.grantee"
    agent = Party(a.id, a.key, _token(kc_admin, "commune-agent", a.key, a.id))
    assert_problem(await _grant(tenancy, agent, parties["epci"], None), 403, "forbidden")
    assert (await tenancy.get("/v1/grants", headers=agent.headers)).json()["total"] == 0
