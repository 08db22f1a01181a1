"""``/v1/metering-accounts`` on the real PostgreSQL and Keycloak: idempotent opening, who reads what."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from socle_billing.domain.metering_accounts.services import OPENED
from socle_tenancy.app import create_app as create_tenancy
from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.isolation.services import dsn
from tests.billing.conftest import bearer, commune_of_registry
from tests.support.apps import settings_kwargs
from tests.support.fixtures import registered_commune
from tests.tenancy.conftest import DEMO_SIREN, assert_problem


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
    tenant_id, key = await commune_of_registry(database)
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


async def test_an_operator_may_open_an_epci_account(billing, operator, database, keycloak) -> None:
    async with AsyncTestClient(create_tenancy(TenancySettings(**settings_kwargs("tenancy", database, keycloak)))) as t:
        registered = await t.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator)
    assert registered.status_code in (200, 201), registered.text
    epci = registered.json()["tenant"]
    response = await billing.put(
        f"/v1/metering-accounts/{epci['id']}", json={"tenant_key": epci["key"], "kind": "epci"}, headers=operator
    )
    assert response.status_code in (200, 201), response.text  # 200 when the EPCI's onboarding opened it already
    assert (response.json()["tenant_key"], response.json()["kind"]) == (epci["key"], "epci")


async def test_conflicting_openings_change_nothing(billing, platform, database) -> None:
    tenant_id, key = await commune_of_registry(database)
    url = f"/v1/metering-accounts/{tenant_id}"
    opened = await billing.put(url, json={"tenant_key": key, "kind": "commune"}, headers=platform)
    assert opened.status_code == 201, opened.text
    other_key = key[:-3] + f"{(int(key[-3:]) + 1) % 1000:03d}"
    moved = assert_problem(
        await billing.put(url, json={"tenant_key": other_key, "kind": "commune"}, headers=platform), 409, "conflict"
    )
    assert key in moved["detail"]
    assert moved["current_tenant_key"] == key
    # Another tenant of the registry cannot take this key: the registry gives it its own.
    other_id, other_own_key = await commune_of_registry(database)
    taken = assert_problem(
        await billing.put(
            f"/v1/metering-accounts/{other_id}", json={"tenant_key": key, "kind": "commune"}, headers=platform
        ),
        422,
        "validation-error",
    )
    assert taken["detail"] == f"la collectivité {other_id} a la clé {other_own_key} dans le registre, pas {key}"
    assert [e["field"] for e in taken["errors"]] == ["body.tenant_key"]
    assert (await billing.get(url, headers=platform)).json()["tenant_key"] == key
    assert_problem(await billing.get(f"/v1/metering-accounts/{other_id}", headers=platform), 404, "not-found")


async def test_a_key_another_tenant_holds_is_a_409_in_billing_words(billing, platform, database) -> None:
    """The unique key is mapped by the core (no catch in billing), with billing's message and the field."""
    tenant_id, key = await commune_of_registry(database)
    squatter = uuid.uuid4()  # an account written past the registry check, under the commune's key
    insert = (
        "INSERT INTO billing.metering_accounts (tenant_id, tenant_key, kind, status, opened_by) "
        "VALUES ($1, $2, 'commune', 'open', 'test') RETURNING tenant_id"
    )
    assert len(await rows_in_context(database, insert, squatter, squatter, key)) == 1
    refused = assert_problem(
        await billing.put(
            f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": key, "kind": "commune"}, headers=platform
        ),
        409,
        "conflict",
    )
    assert refused["detail"] == "cette clé a déjà un compte de consommation, ouvert pour un autre tenant"
    assert refused["errors"] == [{"location": "body", "field": "body.tenant_key", "detail": refused["detail"]}]
    assert refused["constraint"] == "uq_metering_accounts_tenant_key"
    sql = "SELECT 1 FROM billing.metering_accounts WHERE tenant_id = $1"
    assert await rows_in_context(database, sql, tenant_id, tenant_id) == []
    assert OPENED not in await audit_actions(database, tenant_id)


async def test_no_account_opens_for_a_tenant_the_registry_does_not_hold(billing, platform, operator, database) -> None:
    """A tenant id that names nobody, or a deleted tenant: 404, no account, no directory entry, no audit entry."""
    deleted = await registered_commune(database, status="deleted")
    for tenant_id, key in ((uuid.uuid4(), "commune-9B999"), (deleted.id, deleted.alias)):
        for headers in (platform, operator):
            refused = assert_problem(
                await billing.put(
                    f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": key, "kind": "commune"}, headers=headers
                ),
                404,
                "not-found",
            )
            assert refused["detail"].startswith(f"aucune collectivité {tenant_id} dans le registre")
            assert refused["tenant_id"] == str(tenant_id)
        assert_problem(await billing.get(f"/v1/metering-accounts/{tenant_id}", headers=platform), 404, "not-found")
        directory = "SELECT 1 FROM billing.metering_account_directory WHERE account_of = $1"
        assert await rows_in_context(database, directory, None, tenant_id) == []
        assert "billing.metering_account_opened" not in await audit_actions(database, tenant_id)


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


async def test_a_commune_may_not_open_accounts(billing, kc_admin, database) -> None:
    tenant_id, key = await commune_of_registry(database)
    admin = bearer(kc_admin, ("commune-admin",), (key, tenant_id))
    problem = assert_problem(
        await billing.put(
            f"/v1/metering-accounts/{tenant_id}", json={"tenant_key": key, "kind": "commune"}, headers=admin
        ),
        403,
        "forbidden",
    )
    assert "operator" in problem["detail"]


async def test_a_tenant_reads_its_own_account_and_another_tenants_is_a_404(
    billing, platform, kc_admin, database
) -> None:
    tenant_a, key_a = await commune_of_registry(database)
    tenant_b, key_b = await commune_of_registry(database)
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


async def test_platform_roles_read_any_account_and_page_through_all(
    billing, platform, operator, auditor, database
) -> None:
    opened = []
    for _ in range(3):
        tenant, key = await commune_of_registry(database)
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
    tenant_id, key = await commune_of_registry(database)
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
