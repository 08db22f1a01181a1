"""Tenancy's Keycloak adapter and its errors (the core's one mapping), against the session's real Keycloak.

Refusals are the real Keycloak's: a wrong client secret is its 401, a second organization of
an existing name and a second membership are its 409s, a domain owned by another organization
its 400, a closed local port is a real refused
connection. Only a passing network failure, which a healthy Keycloak never produces on
demand, is injected by ``tests.support.faults.Faults`` in front of the real server.
"""

from __future__ import annotations

import uuid
from contextlib import aclosing

import httpx
import pytest

from socle_core.keycloak_admin import (
    IdentityProviderConflict,
    IdentityProviderError,
    IdentityProviderRefused,
    IdentityProviderUnavailable,
)
from socle_devstack.processes import free_port
from socle_tenancy.keycloak import KeycloakAdmin
from tests.support.faults import Faults
from tests.support.keycloak_admin import create_user

ORGANIZATIONS = "/admin/realms/socle/organizations"


def _alias() -> str:
    return f"commune-{uuid.uuid4().hex[:8]}"


async def test_a_missing_secret_says_which_setting_to_set(tenancy_settings) -> None:
    transport = Faults()
    async with aclosing(KeycloakAdmin(tenancy_settings(keycloak_client_secret=None), transport=transport)) as admin:
        with pytest.raises(IdentityProviderError, match="SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET") as caught:
            await admin.find_organization(str(uuid.uuid4()))
    assert caught.value.status == 502
    assert transport.calls == []  # said before asking Keycloak anything


async def test_refused_client_credentials_are_a_502_naming_the_settings_in_the_log_only(tenancy_settings) -> None:
    """Our own credentials refused: not the caller's fault nor a passing failure; the hint is for the operator."""
    async with aclosing(KeycloakAdmin(tenancy_settings(keycloak_client_secret="not-the-secret"))) as admin:
        with pytest.raises(IdentityProviderError) as caught:
            await admin.find_organization(str(uuid.uuid4()))
    assert caught.value.status == 502
    assert caught.value.detail.startswith("le fournisseur d'identité refuse les identifiants de la plateforme")
    assert "KEYCLOAK_CLIENT_SECRET" not in caught.value.detail
    assert "401" in str(caught.value.__cause__)
    assert "KEYCLOAK_CLIENT_SECRET" in str(caught.value.__cause__)


async def test_a_keycloak_409_is_a_conflict_its_message_kept_for_the_log(tenancy_settings) -> None:
    async with aclosing(KeycloakAdmin(tenancy_settings())) as admin:
        name = f"Saint-Martin {uuid.uuid4().hex[:8]}"  # two communes of one name: Keycloak keeps names unique
        await admin.ensure_organization(
            tenant_id=str(uuid.uuid4()), alias=_alias(), name=name, domains=[], description="d"
        )
        with pytest.raises(IdentityProviderConflict) as caught:
            await admin.ensure_organization(
                tenant_id=str(uuid.uuid4()), alias=_alias(), name=name, domains=[], description="d"
            )
    assert caught.value.status == 409
    assert "same name" in caught.value.__cause__.detail
    assert "same name" not in caught.value.detail


async def test_a_domain_owned_by_another_organization_is_a_422_not_a_retry(tenancy_settings) -> None:
    """Keycloak answers 400 here: a refusal a retry will not change (422, not 503), Keycloak's words not shown."""
    async with aclosing(KeycloakAdmin(tenancy_settings())) as admin:
        domain = f"mairie-{uuid.uuid4().hex[:8]}.fr"
        await admin.ensure_organization(
            tenant_id=str(uuid.uuid4()), alias=_alias(), name=_alias(), domains=[domain], description="d"
        )
        with pytest.raises(IdentityProviderRefused) as caught:
            await admin.ensure_organization(
                tenant_id=str(uuid.uuid4()), alias=_alias(), name=_alias(), domains=[domain], description="d"
            )
    assert (caught.value.status, caught.value.slug) == (422, "identity-provider-refused")
    assert f"{domain} is already linked to another organization" in caught.value.__cause__.detail
    assert domain not in caught.value.detail


async def test_an_existing_organization_is_reused_not_recreated(tenancy_settings, kc_admin) -> None:
    tenant_id, alias = str(uuid.uuid4()), _alias()
    async with aclosing(KeycloakAdmin(tenancy_settings())) as admin:
        created = await admin.ensure_organization(
            tenant_id=tenant_id, alias=alias, name=alias, domains=[], description="d"
        )

    transport = Faults()
    async with aclosing(KeycloakAdmin(tenancy_settings(), transport=transport)) as admin:
        found = await admin.ensure_organization(
            tenant_id=tenant_id, alias=alias, name=alias, domains=[], description="d"
        )
    assert found["id"] == created["id"]
    assert found["alias"] == alias
    assert [c for c in transport.calls if c.request.method == "POST" and "/admin/" in c.request.url.path] == []
    in_realm = kc_admin.request("GET", "/organizations", params={"q": f"tenant_id:{tenant_id}"}).json()
    assert [o["id"] for o in in_realm] == [created["id"]]  # one organization for the tenant in the real realm


async def test_being_already_a_member_is_fine(tenancy_settings, kc_admin) -> None:
    async with aclosing(KeycloakAdmin(tenancy_settings())) as admin:
        alias = _alias()
        organization = await admin.ensure_organization(
            tenant_id=str(uuid.uuid4()), alias=alias, name=alias, domains=[], description="d"
        )
        user = create_user(kc_admin)
        await admin.ensure_member(organization["id"], user.id)

    transport = Faults()
    async with aclosing(KeycloakAdmin(tenancy_settings(), transport=transport)) as admin:
        await admin.ensure_member(organization["id"], user.id)
    assert [c.answer for c in transport.calls if c.request.url.path.endswith("/members")] == [409]  # Keycloak's own
    members = kc_admin.request("GET", f"/organizations/{organization['id']}/members").json()
    assert [m["id"] for m in members] == [user.id]


async def test_network_errors_are_a_503(tenancy_settings) -> None:
    closed = (
        f"http://127.0.0.1:{free_port()}/admin/realms/socle"  # the token is real, the admin API refuses connections
    )
    async with aclosing(KeycloakAdmin(tenancy_settings(keycloak_admin_url=closed))) as admin:
        with pytest.raises(IdentityProviderUnavailable) as caught:
            await admin.find_organization(str(uuid.uuid4()))
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"]
    assert "après 3 tentatives : ConnectError" in str(caught.value.__cause__)


async def test_a_passing_network_failure_is_retried_by_the_core_client(tenancy_settings) -> None:
    transport = Faults(httpx.ConnectError, method="GET", path=ORGANIZATIONS, message="connection reset")
    async with aclosing(KeycloakAdmin(tenancy_settings(), transport=transport)) as admin:
        assert await admin.find_organization(str(uuid.uuid4())) is None
    assert [(c.request.method, c.answer) for c in transport.matching()] == [("GET", "ConnectError"), ("GET", 200)]
