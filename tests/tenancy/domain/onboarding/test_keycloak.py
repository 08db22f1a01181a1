"""The Keycloak admin client's error mapping, with httpx.MockTransport (the real Keycloak is
exercised by the onboarding tests)."""

from __future__ import annotations

import json

import httpx
import pytest

from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.onboarding.keycloak import KeycloakAdmin, KeycloakConflict, KeycloakError

ISSUER = "http://sso.test/realms/socle"


def settings(**overrides) -> TenancySettings:
    return TenancySettings(
        environment="test",
        database_url="postgresql+asyncpg://u:p@127.0.0.1:1/socle",
        oidc_issuer=ISSUER,
        **{"keycloak_client_secret": "s3cret", **overrides},
    )


def keycloak(handler, **overrides) -> KeycloakAdmin:
    return KeycloakAdmin(settings(**overrides), transport=httpx.MockTransport(handler))


def token_then(handler):
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/protocol/openid-connect/token"):
            assert b"client_id=socle-platform" in request.content
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        assert request.headers["authorization"] == "Bearer t"
        assert request.url.path.startswith("/admin/realms/socle/")
        return handler(request)

    return route


async def test_a_missing_secret_says_which_setting_to_set(clean_socle_env) -> None:
    admin = keycloak(lambda r: httpx.Response(500), keycloak_client_secret=None)
    with pytest.raises(KeycloakError, match="SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET"):
        await admin.find_organization("t")
    await admin.aclose()


async def test_refused_client_credentials_are_a_503_naming_the_settings(clean_socle_env) -> None:
    admin = keycloak(lambda r: httpx.Response(401, json={"error": "unauthorized_client"}))
    with pytest.raises(KeycloakError, match="KEYCLOAK_CLIENT_SECRET") as caught:
        await admin.find_organization("t")
    assert caught.value.status == 503
    await admin.aclose()


async def test_a_keycloak_409_is_a_conflict_with_its_message(clean_socle_env) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(409, json={"errorMessage": "Domain mairie.fr is already linked to another organization"})

    admin = keycloak(token_then(handler))
    with pytest.raises(KeycloakConflict, match="already linked") as caught:
        await admin.ensure_organization(
            tenant_id="t", alias="commune-30321", name="S", domains=["mairie.fr"], description="d"
        )
    assert caught.value.status == 409
    await admin.aclose()


async def test_an_existing_organization_is_reused_not_recreated(clean_socle_env) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/organizations"):
            assert request.method == "GET"
            assert request.url.params["q"] == "tenant_id:abc"
            return httpx.Response(200, json=[{"id": "o1", "attributes": {"tenant_id": ["abc"]}}])
        return httpx.Response(200, json={"id": "o1", "alias": "commune-30321"})

    admin = keycloak(token_then(handler))
    found = await admin.ensure_organization(
        tenant_id="abc", alias="commune-30321", name="S", domains=[], description="d"
    )
    assert found["id"] == "o1"
    assert [c for c in calls if c.startswith("POST")] == []
    await admin.aclose()


async def test_being_already_a_member_is_fine(clean_socle_env) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == "u1"
        return httpx.Response(409, json={"errorMessage": "User is already a member of the organization"})

    admin = keycloak(token_then(handler))
    await admin.ensure_member("o1", "u1")
    await admin.aclose()


async def test_network_errors_are_a_503(clean_socle_env) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    admin = keycloak(token_then(handler))
    with pytest.raises(KeycloakError, match="connection refused"):
        await admin.find_organization("t")
    await admin.aclose()


async def test_a_passing_network_failure_is_retried_by_the_core_client(clean_socle_env) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.ConnectError("connection reset", request=request)
        return httpx.Response(200, json=[])

    admin = keycloak(token_then(handler))
    assert await admin.find_organization("t") is None
    assert calls == ["GET", "GET"]
    await admin.aclose()
