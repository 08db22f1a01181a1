"""The ``metering_account`` step: onboarding opens the tenant's account in the real billing service.

A commune of the pool (``free_commune``), touched by no other test. Billing first not configured, then
unreachable: each time the step fails with a clear 503 and the tenant stays ``invited``;
once billing is there, the same request completes the workflow, and a further run opens
no second account.
"""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from socle_devstack.processes import free_port
from socle_tenancy.app import create_app
from socle_tenancy.domain.isolation.services import dsn
from tests.tenancy.conftest import assert_problem, first_admin

pytestmark = pytest.mark.usefixtures("demo_epci")


async def accounts_of(database, tenant_id: str) -> list[dict[str, object]]:
    """The rows of ``billing.metering_accounts`` as billing's application role sees them in the tenant's context."""
    connection = await asyncpg.connect(dsn(database.url("billing", "app")))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
            rows = await connection.fetch(
                "SELECT tenant_id::text, tenant_key, kind, status FROM billing.metering_accounts"
            )
            return [dict(r) for r in rows]
    finally:
        await connection.close()


def states(body: dict[str, object]) -> dict[str, str]:
    return {s["step"]: s["status"] for s in body["steps"]}  # type: ignore[index, union-attr]


async def test_the_metering_step_fails_clearly_until_billing_is_there_then_a_retry_completes(
    tenancy_settings, operator, kc_admin, billing_url, database, free_commune
) -> None:
    insee, request = free_commune.insee, first_admin(free_commune)
    # 1. Billing not configured: the step fails and says what to set; nothing is skipped.
    async with AsyncTestClient(create_app(tenancy_settings(billing_url=None))) as client:
        body = assert_problem(
            await client.post(f"/v1/tenants/{insee}/onboarding", json=request, headers=operator),
            503,
            "billing-not-configured",
        )
        assert "SOCLE_TENANCY_BILLING_URL" in body["detail"]
        assert body["failed_step"] == "metering_account"
        assert states(body) == {
            "tenant_record": "done",
            "identity_organization": "done",
            "first_admin": "done",
            "default_quotas": "done",
            "metering_account": "failed",
            "activation": "pending",
        }
        tenant_id = body["tenant_id"]
        tenant = (await client.get(f"/v1/tenants/{tenant_id}", headers=operator)).json()["tenant"]
        assert tenant["status"] == "invited"
    assert await accounts_of(database, tenant_id) == []

    # 2. Billing configured but unreachable (a crash of the billing side): same state, the error says where.
    down = f"http://127.0.0.1:{free_port()}"
    async with AsyncTestClient(create_app(tenancy_settings(billing_url=down, billing_attempts=2))) as client:
        body = assert_problem(
            await client.post(f"/v1/tenants/{insee}/onboarding", headers=operator), 503, "billing-error"
        )
        assert down in body["detail"]
        assert "2 tentative(s)" in body["detail"]
        assert body["failed_step"] == "metering_account"
        assert states(body)["metering_account"] == "failed"
        assert states(body)["activation"] == "pending"
        assert (await client.get(f"/v1/tenants/{tenant_id}", headers=operator)).json()["tenant"]["status"] == "invited"
    assert await accounts_of(database, tenant_id) == []

    # 3. Billing there: the retry resumes at the failed step and completes.
    async with AsyncTestClient(create_app(tenancy_settings())) as client:
        done = await client.post(f"/v1/tenants/{insee}/onboarding", headers=operator)
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["completed"] is True
        assert body["tenant"]["status"] == "active"
        assert body["tenant"]["id"] == tenant_id
        attempts = {s["step"]: s["attempts"] for s in body["steps"]}
        assert attempts == {
            "tenant_record": 3,
            "identity_organization": 1,
            "first_admin": 1,
            "default_quotas": 1,
            "metering_account": 3,
            "activation": 1,
        }
        step = next(s for s in body["steps"] if s["step"] == "metering_account")
        assert step["last_error"] is None
        account = step["result"]
        assert account["tenant_id"] == tenant_id
        assert account["tenant_key"] == f"commune-{insee}"
        assert account["kind"] == "commune"
        assert account["status"] == "open"

        # 4. Onboarding again changes nothing: one account, the step not redone.
        again = (await client.post(f"/v1/tenants/{insee}/onboarding", headers=operator)).json()
        assert next(s for s in again["steps"] if s["step"] == "metering_account")["attempts"] == 3
    assert await accounts_of(database, tenant_id) == [
        {"tenant_id": tenant_id, "tenant_key": f"commune-{insee}", "kind": "commune", "status": "open"}
    ]

    # The account, through billing's API: the tenant reads its own, another tenant gets a 404.
    own = kc_admin.create_client(roles=("commune-admin",), organization=(f"commune-{insee}", uuid.UUID(tenant_id)))
    other = kc_admin.create_client(
        roles=("commune-admin",), organization=(f"commune-{uuid.uuid4().hex[:8]}", uuid.uuid4())
    )
    own_token, other_token = kc_admin.token(own)["access_token"], kc_admin.token(other)["access_token"]
    async with httpx.AsyncClient(base_url=billing_url, timeout=30) as http:
        mine = await http.get(
            f"/v1/metering-accounts/{tenant_id}",
            headers={"Authorization": f"Bearer {own_token}"},
        )
        assert mine.status_code == 200, mine.text
        assert mine.json() == account
        theirs = await http.get(
            f"/v1/metering-accounts/{tenant_id}",
            headers={"Authorization": f"Bearer {other_token}"},
        )
        assert theirs.status_code == 404
        assert theirs.headers["content-type"].startswith("application/problem+json")
        assert f"commune-{insee}" not in theirs.text
