"""The onboarding Keycloak client on the real Keycloak: what offboarding and invitations rely on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from socle_core.errors import Conflict
from socle_devstack.processes import free_port
from socle_tenancy.keycloak import INVITATION_NOT_SENT, KeycloakAdmin
from tests.support.faults import Faults
from tests.support.keycloak_admin import create_user


def _status(kc_admin, path: str) -> int:
    with kc_admin._client() as client:
        return client.get(f"{kc_admin.base}{path}").status_code


async def test_deleting_an_organization_also_deletes_the_identity_providers_linked_to_it(
    tenancy_settings, kc_admin
) -> None:
    suffix = uuid.uuid4().hex[:10]
    admin = KeycloakAdmin(tenancy_settings())
    try:
        organization = await admin.ensure_organization(
            tenant_id=str(uuid.uuid4()),
            alias=f"commune-t{suffix}",
            name=f"Test {suffix}",
            domains=[f"{suffix}.example.fr"],
            description="offboarding test",
            siren="200000000",
        )
        provider = f"idp-{suffix}"
        issuer = "https://idp.example.fr/realms/mairie"
        kc_admin.request(
            "POST",
            "/identity-provider/instances",
            json={
                "alias": provider,
                "providerId": "oidc",
                "enabled": True,
                "config": {
                    "issuer": issuer,
                    "authorizationUrl": f"{issuer}/protocol/openid-connect/auth",
                    "tokenUrl": f"{issuer}/protocol/openid-connect/token",
                    "clientId": "socle",
                    "clientSecret": "x",
                },
            },
        )
        kc_admin.request("POST", f"/organizations/{organization['id']}/identity-providers", json=provider)
        assert _status(kc_admin, f"/identity-provider/instances/{provider}") == 200

        assert await admin.delete_organization(str(organization["id"])) is True
        assert _status(kc_admin, f"/identity-provider/instances/{provider}") == 404
        assert _status(kc_admin, f"/organizations/{organization['id']}") == 404
        assert await admin.delete_organization(str(organization["id"])) is False  # already gone
    finally:
        await admin.aclose()


@pytest.fixture
def unreachable_smtp(kc_admin) -> Iterator[None]:
    """The realm's mail server points at a closed port (other tests may point it at a live sink)."""
    previous = kc_admin.request("GET", "").json().get("smtpServer") or {}
    closed = {"host": "127.0.0.1", "port": str(free_port()), "from": "socle@socle.localhost"}
    kc_admin.request("PUT", "", json={"smtpServer": closed})
    yield
    kc_admin.request("PUT", "", json={"smtpServer": previous})


async def test_an_invitation_e_mail_that_cannot_leave_is_reported_not_raised(
    tenancy_settings, kc_admin, unreachable_smtp
) -> None:
    """The account stays, the step records why no mail left; the mail is tried once, not retried."""
    transport = Faults(path="/execute-actions-email")  # records only
    admin = KeycloakAdmin(tenancy_settings(), transport=transport)
    try:
        email = f"first.admin.{uuid.uuid4().hex[:8]}@example.fr"
        user = await admin.ensure_invited_user(email, realm_role="commune-admin", organization_id=str(uuid.uuid4()))
        error = await admin.send_invitation(str(user["id"]), ["UPDATE_PASSWORD"])
        assert error == INVITATION_NOT_SENT  # Keycloak's "Failed to send execute actions email" stays in the log
        assert [call.answer for call in transport.matching()] == [500]  # Keycloak's own answer, once
        assert await admin.send_invitation(str(user["id"]), []) == ""  # nothing to do: nothing sent
        users = kc_admin.request("GET", "/users", params={"email": email, "exact": "true"}).json()
        assert [u["id"] for u in users] == [user["id"]]
        kc_admin.request("DELETE", f"/users/{user['id']}")
    finally:
        await admin.aclose()


async def test_onboarding_never_makes_another_communes_or_the_platforms_account_a_first_admin(
    tenancy_settings, kc_admin
) -> None:
    """The first admin's address of an existing account of another commune, or of platform staff: refused, untouched."""
    suffix = uuid.uuid4().hex[:10]
    admin = KeycloakAdmin(tenancy_settings())
    try:
        here, there = [
            await admin.ensure_organization(
                tenant_id=str(uuid.uuid4()),
                alias=f"commune-{name}{suffix}",
                name=f"Test {name} {suffix}",
                domains=[f"{name}{suffix}.example.fr"],
                description="first admin test",
                siren="200000000",
            )
            for name in ("a", "b")
        ]
        staff = create_user(kc_admin, "commune-agent")
        kc_admin.request("POST", f"/organizations/{there['id']}/members", json=staff.id)
        auditor = create_user(kc_admin, "auditor")
        for account in (staff, auditor):
            email = f"{account.username}@example.fr"
            before = sorted(
                r["name"] for r in kc_admin.request("GET", f"/users/{account.id}/role-mappings/realm").json()
            )
            with pytest.raises(Conflict) as refused:
                await admin.ensure_invited_user(email, realm_role="commune-admin", organization_id=str(here["id"]))
            assert "compte existant d'une autre collectivité ou de la plateforme" in refused.value.detail
            after = sorted(
                r["name"] for r in kc_admin.request("GET", f"/users/{account.id}/role-mappings/realm").json()
            )
            assert after == before
            assert "commune-admin" not in after
        # An account of nobody, or one a crashed onboarding of this very organization created, is taken.
        fresh = create_user(kc_admin)
        taken = await admin.ensure_invited_user(
            f"{fresh.username}@example.fr", realm_role="commune-admin", organization_id=str(here["id"])
        )
        assert taken["id"] == fresh.id
        for organization in (here, there):
            await admin.delete_organization(str(organization["id"]))
        for account in (staff, auditor, fresh):
            kc_admin.request("DELETE", f"/users/{account.id}")
    finally:
        await admin.aclose()
