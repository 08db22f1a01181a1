"""``/v1/organizations/{alias}``: suspension, resumption and deletion on the real Keycloak and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from socle_identity.keycloak import Organizations
from tests.core.test_app import assert_problem
from tests.core.test_audit import _chain
from tests.identity.conftest import browser_login
from tests.support.fixtures import new_tenant
from tests.support.keycloak_admin import ClientCredentials


@pytest.fixture
def operator(kc_admin) -> dict[str, str]:
    client = kc_admin.create_client(roles=("operator",))
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


async def _organization(platform_keycloak):
    tenant = new_tenant()
    await Organizations(platform_keycloak).ensure(tenant.alias, name=f"Mairie {tenant.alias}", tenant_id=tenant.id)
    return tenant


async def test_suspension_stops_the_members_logging_in_and_resume_restores(
    identity, operator, platform_keycloak, realm_user, keycloak, database
) -> None:
    tenant = await _organization(platform_keycloak)
    agent = realm_user("commune-agent")
    await Organizations(platform_keycloak).add_member(tenant.alias, agent.id)
    assert browser_login(keycloak, "socle-console", agent.username, agent.password).redirect is not None

    suspended = await identity.post(f"/v1/organizations/{tenant.alias}/suspension", headers=operator)
    assert suspended.status_code == 200, suspended.text
    assert suspended.json() == {
        "alias": tenant.alias,
        "name": f"Mairie {tenant.alias}",
        "tenant_id": str(tenant.id),
        "enabled": False,
        "domains": [],
    }
    assert browser_login(keycloak, "socle-console", agent.username, agent.password).redirect is None
    again = await identity.post(f"/v1/organizations/{tenant.alias}/suspension", headers=operator)
    assert again.json()["enabled"] is False

    resumed = await identity.delete(f"/v1/organizations/{tenant.alias}/suspension", headers=operator)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["enabled"] is True
    assert browser_login(keycloak, "socle-console", agent.username, agent.password).redirect is not None
    assert (await identity.delete(f"/v1/organizations/{tenant.alias}/suspension", headers=operator)).status_code == 200

    subject = (await identity.get("/v1/me", headers=operator)).json()["subject"]
    entries = await _chain(database, tenant.id)
    assert [(r["action"], r["actor"], r["target"]) for r in entries] == [
        ("organization.suspended", subject, f"organization:{tenant.alias}"),
        ("organization.resumed", subject, f"organization:{tenant.alias}"),
    ]


async def test_delete_is_idempotent_and_audited(identity, operator, platform_keycloak, database) -> None:
    tenant = await _organization(platform_keycloak)
    for _ in range(2):
        response = await identity.delete(f"/v1/organizations/{tenant.alias}", headers=operator)
        assert response.status_code == 204, response.text
    assert await Organizations(platform_keycloak).get(tenant.alias) is None
    assert [r["action"] for r in await _chain(database, tenant.id)] == ["organization.deleted"]


async def test_the_platform_client_may_suspend(identity, platform_keycloak, kc_admin, credentials) -> None:
    tenant = await _organization(platform_keycloak)
    platform = kc_admin.token(ClientCredentials("socle-platform", credentials["platform_client"], ""))
    response = await identity.post(
        f"/v1/organizations/{tenant.alias}/suspension",
        headers={"Authorization": f"Bearer {platform['access_token']}"},
    )
    assert response.status_code == 200, response.text
    assert (await Organizations(platform_keycloak).require(tenant.alias)).enabled is False


async def test_communes_may_not_suspend_or_delete(identity, platform_keycloak, kc_admin, database) -> None:
    tenant = await _organization(platform_keycloak)
    for roles in (("commune-admin",), ("epci-admin",), ("auditor",)):
        client = kc_admin.create_client(organization=(tenant.alias, tenant.id), roles=roles)
        token = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
        for method, path in (("POST", "/suspension"), ("DELETE", "/suspension"), ("DELETE", "")):
            response = await identity.request(method, f"/v1/organizations/{tenant.alias}{path}", headers=token)
            assert "operator" in assert_problem(response, 403, "forbidden")["detail"]
    assert (await Organizations(platform_keycloak).require(tenant.alias)).enabled is True
    assert await _chain(database, tenant.id) == []


async def test_an_unknown_organization_is_404(identity, operator) -> None:
    alias = f"commune-{uuid.uuid4().hex[:8]}"
    for method in ("POST", "DELETE"):
        response = await identity.request(method, f"/v1/organizations/{alias}/suspension", headers=operator)
        assert assert_problem(response, 404, "not-found")["alias"] == alias
