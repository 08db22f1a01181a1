"""``/v1/metering-accounts`` on the real PostgreSQL and Keycloak: idempotent opening, who reads what."""

from __future__ import annotations

import random
import uuid

import asyncpg
import pytest

from socle_tenancy.domain.isolation.services import dsn
from tests.billing.conftest import bearer, corsican_commune
from tests.support.registry import register_tenant
from tests.tenancy.conftest import assert_problem


async def rows_in_context(database, sql: str, tenant: uuid.UUID | None, *args: object) -> list[asyncpg.Record]:
    """``sql`` as billing's application role, in ``tenant``'s context (none: empty context)."""
    connection = await asyncpg.connect(dsn(database.url("billing", "app")))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant) if tenant else "")
            return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def audit_actions(database, tenant: uuid.UUID) -> list[str]:
    connection = await asyncpg.connect(dsn(database.url("tenancy", "app")))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
            rows = await connection.fetch("SELECT action FROM tenancy.audit_entries WHERE tenant_id = $1", tenant)
            return [r["action"] for r in rows]
    finally:
        await connection.close()


async def test_the_platform_opens_an_account_once_and_gets_the_same_back(billing, platform, database) -> None:
    tenant_id, key = corsican_commune()
    first = await billing.put(
        f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": key, "kind": "commune"}, headers=platform
    )
    assert first.status_code == 201, first.text
    account = first.json()
    assert account["tenant_id"] == str(tenant_id)
    assert account["tenant_key"] == key
    assert account["kind"] == "commune"
    assert account["status"] == "open"
    assert account["opened_by"]  # the platform service account's subject
    again = await billing.put(
        f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": key, "kind": "commune"}, headers=platform
    )
    assert again.status_code == 200, again.text
    assert again.json() == account

    # One row, visible only in the tenant's own context, and one audit entry.
    sql = "SELECT tenant_key, status FROM billing.metering_accounts WHERE tenant_key = $1"
    assert [tuple(r) for r in await rows_in_context(database, sql, tenant_id, key)] == [(key, "open")]
    assert await rows_in_context(database, sql, None, key) == []
    assert await rows_in_context(database, sql, uuid.uuid4(), key) == []
    assert (await audit_actions(database, tenant_id)).count("billing.metering_account_opened") == 1


async def test_an_operator_may_open_an_epci_account(billing, operator) -> None:
    tenant_id, siren = uuid.uuid4(), str(random.randint(200_000_000, 299_999_999))
    register_tenant(tenant_id, f"epci-{siren}")
    response = await billing.put(
        f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": f"epci-{siren}", "kind": "epci"}, headers=operator
    )
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "epci"


async def test_an_account_of_a_tenant_the_registry_does_not_know_is_refused(billing, platform) -> None:
    """Its opening would start an audit chain for a tenant no onboarding registered: nothing is opened."""
    tenant_id, key = uuid.uuid4(), f"commune-2A{random.randint(0, 999):03d}"
    url = f"/v1/metering-accounts/{tenant_id}"
    problem = assert_problem(
        await billing.put(url, json={"tenant_key": key, "kind": "commune"}, headers=platform), 404, "not-found"
    )
    assert "registre des locataires" in problem["detail"]
    assert problem["tenant_id"] == str(tenant_id)
    assert_problem(await billing.get(url, headers=platform), 404, "not-found")


async def test_conflicting_openings_change_nothing(billing, platform, database) -> None:
    tenant_id, key = corsican_commune()
    url = f"/v1/metering-accounts/{tenant_id}"
    opened = await billing.put(url, json={"tenant_key": key, "kind": "commune"}, headers=platform)
    assert opened.status_code == 201, opened.text
    other_key = key[:-3] + f"{(int(key[-3:]) + 1) % 1000:03d}"
    moved = assert_problem(
        await billing.put(url, json={"tenant_key": other_key, "kind": "commune"}, headers=platform), 409, "conflict"
    )
    assert key in moved["detail"]
    assert moved["current_tenant_key"] == key
    taken = assert_problem(
        await billing.put(
            f"/v1/metering-accounts/{uuid.uuid4()}", json={"tenant_key": key, "kind": "commune"}, headers=platform
        ),
        409,
        "conflict",
    )
    assert "another tenant" in taken["detail"]
    assert (await billing.get(url, headers=platform)).json()["tenant_key"] == key


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant_key": "commune-2A001", "kind": "epci"}, "body"),
        ({"tenant_key": "mairie-de-sommieres", "kind": "commune"}, "body.tenant_key"),
        ({"tenant_key": "commune-2A001"}, "body.kind"),
        ({"tenant_key": "commune-2A001", "kind": "commune", "opened_by": "me"}, "body.opened_by"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_opens_nothing(billing, platform, body, field) -> None:
    tenant_id = uuid.uuid4()
    problem = assert_problem(
        await billing.put(f"/v1/metering-accounts/{tenant_id}", json=body, headers=platform), 422, "validation-error"
    )
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem["errors"]
    assert_problem(await billing.get(f"/v1/metering-accounts/{tenant_id}", headers=platform), 404, "not-found")


async def test_a_commune_may_not_open_accounts(billing, kc_admin) -> None:
    tenant_id, key = corsican_commune()
    admin = bearer(kc_admin, ("commune-admin",), (key, tenant_id))
    problem = assert_problem(
        await billing.put(
            f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": key, "kind": "commune"}, headers=admin
        ),
        403,
        "forbidden",
    )
    assert "operator" in problem["detail"]


async def test_a_tenant_reads_its_own_account_and_another_tenants_is_a_404(billing, platform, kc_admin) -> None:
    tenant_a, key_a = corsican_commune()
    tenant_b, key_b = corsican_commune()
    for tenant, key in ((tenant_a, key_a), (tenant_b, key_b)):
        opened = await billing.put(
            f"/v1/metering-accounts/{tenant}", json={"tenant_key": key, "kind": "commune"}, headers=platform
        )
        assert opened.status_code == 201, opened.text
    admin_a = bearer(kc_admin, ("commune-admin",), (key_a, tenant_a))
    own = await billing.get(f"/v1/metering-accounts/{tenant_a}", headers=admin_a)
    assert own.status_code == 200, own.text
    assert own.json()["tenant_key"] == key_a
    refused = assert_problem(await billing.get(f"/v1/metering-accounts/{tenant_b}", headers=admin_a), 404, "not-found")
    assert key_b not in refused["detail"]
    agent_a = bearer(kc_admin, ("commune-agent",), (key_a, tenant_a))
    assert_problem(await billing.get(f"/v1/metering-accounts/{tenant_a}", headers=agent_a), 403, "forbidden")
    assert_problem(await billing.get(f"/v1/metering-accounts/{tenant_b}", headers=agent_a), 404, "not-found")
    assert_problem(await billing.get("/v1/metering-accounts", headers=admin_a), 403, "forbidden")


async def test_platform_roles_read_any_account_and_page_through_all(billing, platform, operator, auditor) -> None:
    opened = []
    for _ in range(3):
        tenant, key = corsican_commune()
        response = await billing.put(
            f"/v1/metering-accounts/{tenant}", json={"tenant_key": key, "kind": "commune"}, headers=platform
        )
        assert response.status_code == 201, response.text
        opened.append(response.json())
    for headers in (operator, auditor, platform):
        one = await billing.get(f"/v1/metering-accounts/{opened[0]['tenant_id']}", headers=headers)
        assert one.json() == opened[0]
    assert_problem(await billing.get(f"/v1/metering-accounts/{uuid.uuid4()}", headers=operator), 404, "not-found")

    first = (await billing.get("/v1/metering-accounts", params={"limit": 2}, headers=auditor)).json()
    assert first["limit"] == 2
    assert first["offset"] == 0
    assert len(first["items"]) == 2
    total = first["total"]
    assert total >= 3
    seen = []
    for offset in range(0, total, 2):
        page = await billing.get("/v1/metering-accounts", params={"limit": 2, "offset": offset}, headers=operator)
        assert page.status_code == 200, page.text
        seen += [a["tenant_id"] for a in page.json()["items"]]
    assert len(seen) == len(set(seen))
    assert {a["tenant_id"] for a in opened} <= set(seen)
    bad = assert_problem(await billing.get("/v1/metering-accounts?limit=0", headers=operator), 422, "validation-error")
    assert bad["errors"][0]["field"].endswith("limit")


async def test_a_deleted_account_leaves_the_directory_so_the_listing_stays_exact(
    billing, platform, operator, database
) -> None:
    """Offboarding deletes the account in its tenant's context: the directory entry goes with it."""
    tenant_id, key = corsican_commune()
    opened = await billing.put(
        f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": key, "kind": "commune"}, headers=platform
    )
    assert opened.status_code == 201, opened.text
    directory = "SELECT account_of FROM billing.metering_account_directory WHERE account_of = $1"
    assert len(await rows_in_context(database, directory, None, tenant_id)) == 1
    before = (await billing.get("/v1/metering-accounts", params={"limit": 1}, headers=operator)).json()["total"]

    # As offboarding does it: the billing application role, in the tenant's context.
    deleted = await rows_in_context(
        database, "DELETE FROM billing.metering_accounts WHERE tenant_id = $1 RETURNING tenant_id", tenant_id, tenant_id
    )
    assert len(deleted) == 1
    assert await rows_in_context(database, directory, None, tenant_id) == []
    after = (await billing.get("/v1/metering-accounts", params={"limit": 1}, headers=operator)).json()["total"]
    assert after == before - 1
    missing = await billing.get(f"/v1/metering-accounts/{tenant_id}", headers=operator)
    assert_problem(missing, 404, "not-found")
