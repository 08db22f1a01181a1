"""The one mapping of Keycloak failures to problems, and the one client-credentials token client.

Every refusal is the real Keycloak's (a second organization of one name is its 409, a domain
owned by another organization its 400, a wrong secret its 401, an unknown id its 404); a
closed port is a real refused connection.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from structlog.testing import capture_logs

from socle_core.errors import NotFound
from socle_core.keycloak_admin import (
    ClientCredentialsToken,
    IdentityProviderConflict,
    IdentityProviderError,
    IdentityProviderRefused,
    IdentityProviderUnavailable,
    KeycloakAdminClient,
    KeycloakAuthError,
    keycloak_problems,
)
from socle_devstack.processes import free_port
from tests.support.faults import Faults


@pytest.fixture
async def platform(keycloak, credentials):
    async with KeycloakAdminClient(
        keycloak.url, "socle", "socle-platform", credentials["platform_client"], backoff_seconds=0
    ) as client:
        yield client


def _organization(**extra: object) -> dict[str, object]:
    name = f"commune-{uuid.uuid4().hex[:8]}"
    return {"name": name, "alias": name, "enabled": True, **extra}


async def test_a_409_is_a_conflict_whose_keycloak_message_stays_in_the_log(platform) -> None:
    organization = _organization()
    await platform.request("POST", "/organizations", json=organization)
    with capture_logs() as logs, pytest.raises(IdentityProviderConflict) as caught, keycloak_problems():
        await platform.request("POST", "/organizations", json={**organization, "alias": f"{organization['alias']}-2"})
    problem = caught.value
    assert (problem.status, problem.slug) == (409, "identity-provider-conflict")
    assert problem.detail.startswith("le fournisseur d'identité refuse ce changement")
    keycloak_said = caught.value.__cause__.detail
    assert "same name" in keycloak_said
    assert keycloak_said not in problem.detail
    [logged] = [entry for entry in logs if entry["event"] == "keycloak_failure"]
    assert logged["keycloak_message"] == keycloak_said  # the log keeps it for the operator


async def test_a_400_is_a_422_in_the_callers_words(platform) -> None:
    domain = f"mairie-{uuid.uuid4().hex[:8]}.fr"
    await platform.request("POST", "/organizations", json=_organization(domains=[{"name": domain}]))
    with pytest.raises(IdentityProviderRefused) as caught, keycloak_problems(refused="ce domaine est déjà pris"):
        await platform.request("POST", "/organizations", json=_organization(domains=[{"name": domain}]))
    assert (caught.value.status, caught.value.slug) == (422, "identity-provider-refused")
    assert caught.value.detail == "ce domaine est déjà pris"
    assert caught.value.__cause__.status == 400


async def test_a_404_is_a_404_for_what_the_caller_named_else_a_502(platform) -> None:
    missing = f"/organizations/{uuid.uuid4()}"
    with pytest.raises(NotFound) as named, keycloak_problems(not_found="aucune organisation de ce nom"):
        await platform.request("GET", missing)
    assert (named.value.status, named.value.detail) == (404, "aucune organisation de ce nom")
    with pytest.raises(IdentityProviderError) as expected, keycloak_problems():
        await platform.request("GET", missing)
    assert (expected.value.status, expected.value.slug) == (502, "identity-provider-error")


async def test_refused_platform_credentials_are_a_502_not_the_callers_fault(keycloak) -> None:
    async with KeycloakAdminClient(keycloak.url, "socle", "socle-platform", "not-the-secret") as client:
        with pytest.raises(IdentityProviderError) as caught, keycloak_problems():
            await client.request("GET", "/organizations")
    assert caught.value.status == 502
    assert caught.value.__cause__.status == 401
    assert "not-the-secret" not in caught.value.detail


async def test_no_answer_is_a_503_to_retry(keycloak, credentials) -> None:
    closed = f"http://127.0.0.1:{free_port()}/admin/realms/socle"
    async with KeycloakAdminClient(
        keycloak.url, "socle", "socle-platform", credentials["platform_client"], admin_url=closed, backoff_seconds=0
    ) as client:
        with pytest.raises(IdentityProviderUnavailable) as caught, keycloak_problems():
            await client.request("GET", "/organizations")
    assert (caught.value.status, caught.value.slug) == (503, "identity-provider-unavailable")
    assert caught.value.headers["Retry-After"]


async def test_the_token_client_caches_its_token_and_renews_it_when_told(keycloak, credentials) -> None:
    transport = Faults()
    async with httpx.AsyncClient(transport=transport) as http:
        tokens = ClientCredentialsToken(keycloak.issuer, "socle-platform", credentials["platform_client"], http=http)
        first = await tokens.get()
        assert await tokens.get() == first
        tokens.forget()
        await tokens.get()
        assert [c.answer for c in transport.calls] == [200, 200]
        organizations = await http.get(
            f"{keycloak.url}/admin/realms/socle/organizations", headers={"Authorization": f"Bearer {first}"}
        )
    assert organizations.status_code == 200  # a real token of the platform client


async def test_the_token_client_says_which_credentials_to_check(keycloak) -> None:
    async with httpx.AsyncClient() as http:
        tokens = ClientCredentialsToken(
            keycloak.issuer, "socle-platform", "wrong", http=http, credentials_hint="SOCLE_X_CLIENT_SECRET"
        )
        with pytest.raises(KeycloakAuthError, match="SOCLE_X_CLIENT_SECRET") as caught:
            await tokens.get()
    assert caught.value.status == 401
