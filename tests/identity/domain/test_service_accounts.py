"""``/v1/service-accounts`` end to end: the identity app on the real PostgreSQL and Keycloak."""

from __future__ import annotations

import uuid

import httpx
import pytest
from litestar.testing import AsyncTestClient

from socle_identity.app import create_app
from socle_identity.config import IdentitySettings
from tests.core.test_app import assert_problem
from tests.support.apps import settings_kwargs
from tests.support.fixtures import new_tenant


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_of(kc_admin):
    """A commune-admin token bound to a tenant (a client-credentials client, like a console session)."""

    def make(tenant, *roles: str) -> dict[str, str]:
        client = kc_admin.create_client(organization=(tenant.alias, tenant.id), roles=roles or ("commune-admin",))
        return _bearer(kc_admin.token(client)["access_token"])

    return make


def client_token(keycloak, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=20,
    )


async def test_create_shows_the_secret_once_and_the_token_acts_for_the_tenant(identity, admin_of, keycloak) -> None:
    tenant = new_tenant()
    admin = admin_of(tenant)
    created = await identity.post(
        "/v1/service-accounts", json={"name": "TTS uplinks", "access": "write"}, headers=admin
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["client_id"].startswith(f"sa-{tenant.alias}-")
    assert body["access"] == "write"
    assert body["revoked_at"] is None
    assert body["token_endpoint"] == f"{keycloak.issuer}/protocol/openid-connect/token"

    token = client_token(keycloak, body["client_id"], body["client_secret"])
    assert token.status_code == 200, token.text
    me = await identity.get("/v1/me", headers=_bearer(token.json()["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["tenant_id"] == str(tenant.id)
    assert me.json()["organization"] == tenant.alias
    assert "device" in me.json()["roles"]

    listed = (await identity.get("/v1/service-accounts", headers=admin)).json()
    assert [a["id"] for a in listed] == [body["id"]]
    assert "client_secret" not in listed[0]
    one = await identity.get(f"/v1/service-accounts/{body['id']}", headers=admin)
    assert one.status_code == 200
    assert "client_secret" not in one.json()


async def test_read_access_gets_the_partner_role(identity, admin_of, keycloak) -> None:
    tenant = new_tenant()
    body = (
        await identity.post(
            "/v1/service-accounts", json={"name": "open data portal", "access": "read"}, headers=admin_of(tenant)
        )
    ).json()
    token = client_token(keycloak, body["client_id"], body["client_secret"]).json()["access_token"]
    roles = (await identity.get("/v1/me", headers=_bearer(token))).json()["roles"]
    assert "partner" in roles
    assert "device" not in roles


async def test_another_tenants_service_account_does_not_exist(identity, admin_of) -> None:
    tenant_a, tenant_b = new_tenant(), new_tenant()
    admin_a, admin_b = admin_of(tenant_a), admin_of(tenant_b)
    of_b = (await identity.post("/v1/service-accounts", json={"name": "b", "access": "write"}, headers=admin_b)).json()
    assert (await identity.get("/v1/service-accounts", headers=admin_a)).json() == []
    for method, path in (("GET", ""), ("POST", "/rotate"), ("DELETE", "")):
        response = await identity.request(method, f"/v1/service-accounts/{of_b['id']}{path}", headers=admin_a)
        assert_problem(response, 404, "not-found")
    still = await identity.get(f"/v1/service-accounts/{of_b['id']}", headers=admin_b)
    assert still.status_code == 200
    assert still.json()["revoked_at"] is None


async def test_a_service_account_of_commune_a_is_refused_on_b(identity, admin_of, keycloak) -> None:
    """A's integration token cannot administer, and B's resources stay out of its reach."""
    tenant_a, tenant_b = new_tenant(), new_tenant()
    created = (
        await identity.post("/v1/service-accounts", json={"name": "a", "access": "write"}, headers=admin_of(tenant_a))
    ).json()
    of_b = (
        await identity.post("/v1/service-accounts", json={"name": "b", "access": "write"}, headers=admin_of(tenant_b))
    ).json()
    device = _bearer(client_token(keycloak, created["client_id"], created["client_secret"]).json()["access_token"])
    assert_problem(await identity.get("/v1/service-accounts", headers=device), 403, "forbidden")
    assert_problem(await identity.get(f"/v1/service-accounts/{of_b['id']}", headers=device), 403, "forbidden")


async def test_rotation_invalidates_the_old_secret(identity, admin_of, keycloak) -> None:
    admin = admin_of(new_tenant())
    created = (
        await identity.post("/v1/service-accounts", json={"name": "mqtt", "access": "write"}, headers=admin)
    ).json()
    rotated = await identity.post(f"/v1/service-accounts/{created['id']}/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["client_id"] == created["client_id"]
    assert rotated.json()["client_secret"] != created["client_secret"]
    old = client_token(keycloak, created["client_id"], created["client_secret"])
    assert old.status_code == 401
    assert old.json()["error"] == "unauthorized_client"
    assert client_token(keycloak, created["client_id"], rotated.json()["client_secret"]).status_code == 200


async def test_a_revoked_clients_next_token_request_fails(identity, admin_of, keycloak) -> None:
    admin = admin_of(new_tenant())
    created = (
        await identity.post("/v1/service-accounts", json={"name": "http", "access": "write"}, headers=admin)
    ).json()
    assert client_token(keycloak, created["client_id"], created["client_secret"]).status_code == 200
    revoked = await identity.delete(f"/v1/service-accounts/{created['id']}", headers=admin)
    assert revoked.status_code == 204, revoked.text
    refused = client_token(keycloak, created["client_id"], created["client_secret"])
    assert refused.status_code in (400, 401)
    assert refused.json()["error"] in ("invalid_client", "unauthorized_client")
    listed = (await identity.get(f"/v1/service-accounts/{created['id']}", headers=admin)).json()
    assert listed["revoked_at"] is not None
    assert (await identity.delete(f"/v1/service-accounts/{created['id']}", headers=admin)).status_code == 204
    assert_problem(await identity.post(f"/v1/service-accounts/{created['id']}/rotate", headers=admin), 409, "conflict")


async def test_only_commune_admins_manage_service_accounts(identity, admin_of) -> None:
    agent = admin_of(new_tenant(), "commune-agent")
    body = assert_problem(await identity.get("/v1/service-accounts", headers=agent), 403, "forbidden")
    assert "commune-admin" in body["detail"]


async def test_a_token_without_tenant_is_refused(identity, kc_admin) -> None:
    client = kc_admin.create_client(roles=("commune-admin",))
    token = _bearer(kc_admin.token(client)["access_token"])
    assert_problem(await identity.get("/v1/service-accounts", headers=token), 403, "forbidden")


async def test_bad_input_names_the_field(identity, admin_of) -> None:
    response = await identity.post(
        "/v1/service-accounts", json={"name": "", "access": "admin"}, headers=admin_of(new_tenant())
    )
    body = assert_problem(response, 422, "validation-error")
    assert {"body.name", "body.access"} <= {e["field"] for e in body["errors"]}


async def test_without_platform_secret_the_api_says_what_to_set(clean_socle_env, database, keycloak, admin_of) -> None:
    settings = IdentitySettings(**settings_kwargs("identity", database, keycloak))
    async with AsyncTestClient(create_app(settings)) as client:
        response = await client.get("/v1/service-accounts", headers=admin_of(new_tenant()))
    body = assert_problem(response, 503, "service-unavailable")
    assert "SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET" in body["detail"]


async def test_unknown_id_is_404(identity, admin_of) -> None:
    response = await identity.get(f"/v1/service-accounts/{uuid.uuid4()}", headers=admin_of(new_tenant()))
    assert_problem(response, 404, "not-found")
