"""The Keycloak admin client against the real Keycloak.

Every answer is the real Keycloak's, refusals included (a second organization of the same
name is its own 409). Only faults a healthy Keycloak never produces on demand (a refused
connection, a timeout, a 5xx) are injected, by ``tests.support.faults.Faults`` in front of
it, for the first calls of a conversation whose rest is with the real server.
"""

from __future__ import annotations

import email as email_parser
import uuid

import httpx
import pytest

from socle_core.auth import TokenVerifier, principal_from_claims
from socle_identity.keycloak import (
    KeycloakAdminClient,
    KeycloakAuthError,
    KeycloakConflict,
    KeycloakNotFound,
    KeycloakRefused,
    KeycloakUnavailable,
    Organizations,
    ServiceAccountClients,
)
from tests.identity.conftest import browser_login, console_tokens
from tests.support.faults import Faults


def _alias() -> str:
    return f"commune-{uuid.uuid4().hex[:8]}"


async def test_organization_create_is_idempotent(platform_keycloak) -> None:
    orgs = Organizations(platform_keycloak)
    alias, tenant = _alias(), uuid.uuid4()
    first = await orgs.ensure(alias, name=f"Commune {alias}", tenant_id=tenant, domains=(f"{alias}.fr",))
    again = await orgs.ensure(alias, name=f"Commune {alias}", tenant_id=tenant, domains=(f"{alias}.fr",))
    assert again == first
    assert first.alias == alias
    assert first.tenant_id == tenant
    assert first.enabled
    assert first.domains == (f"{alias}.fr",)
    renamed = await orgs.ensure(alias, name="Nouveau nom", tenant_id=tenant, domains=(f"{alias}.fr", "mairie.fr"))
    assert renamed.id == first.id
    assert renamed.name == "Nouveau nom"
    assert renamed.domains == (f"{alias}.fr", "mairie.fr")
    assert await orgs.get(alias) == renamed


async def test_an_alias_bound_to_another_tenant_is_a_conflict(platform_keycloak) -> None:
    orgs = Organizations(platform_keycloak)
    alias = _alias()
    await orgs.ensure(alias, name=alias, tenant_id=uuid.uuid4())
    with pytest.raises(KeycloakConflict, match="appartient à la collectivité"):
        await orgs.ensure(alias, name=alias, tenant_id=uuid.uuid4())


async def test_a_domain_owned_by_another_organization_is_refused_clearly(platform_keycloak) -> None:
    orgs = Organizations(platform_keycloak)
    domain = f"{uuid.uuid4().hex[:8]}.fr"
    await orgs.ensure(_alias(), name=_alias(), tenant_id=uuid.uuid4(), domains=(domain,))
    with pytest.raises(KeycloakRefused) as refused:
        await orgs.ensure(_alias(), name=_alias(), tenant_id=uuid.uuid4(), domains=(domain,))
    assert refused.value.status == 400
    assert f"Domain {domain} is already linked to another organization" in refused.value.detail


async def test_members_are_added_and_removed_idempotently(platform_keycloak, realm_user) -> None:
    orgs = Organizations(platform_keycloak)
    alias = _alias()
    await orgs.ensure(alias, name=alias, tenant_id=uuid.uuid4())
    user = realm_user("commune-agent")
    await orgs.add_member(alias, user.id)
    await orgs.add_member(alias, user.id)
    assert [m["id"] for m in await orgs.members(alias)] == [user.id]
    await orgs.remove_member(alias, user.id)
    await orgs.remove_member(alias, user.id)
    assert await orgs.members(alias) == []


async def _verified(keycloak, tokens: dict) -> dict:
    verifier = TokenVerifier(keycloak.issuer, "socle-api")
    try:
        return await verifier.verify(str(tokens["access_token"]))
    finally:
        await verifier.aclose()


async def test_suspension_stops_members_logging_in(platform_keycloak, realm_user, keycloak, credentials) -> None:
    orgs = Organizations(platform_keycloak)
    alias = _alias()
    await orgs.ensure(alias, name=alias, tenant_id=uuid.uuid4())
    user, shared = realm_user("commune-agent"), realm_user("commune-agent")
    other = _alias()
    await orgs.ensure(other, name=other, tenant_id=uuid.uuid4())
    for member in (user, shared):
        await orgs.add_member(alias, member.id)
    await orgs.add_member(other, shared.id)
    assert browser_login(keycloak, "socle-console", user.username, user.password).redirect is not None

    suspended = await orgs.suspend(alias)
    assert suspended.enabled is False
    assert browser_login(keycloak, "socle-console", user.username, user.password).redirect is None
    # an agent shared with another commune still logs in, and their token names only that commune
    outcome = browser_login(
        keycloak, "socle-console", shared.username, shared.password, scope=f"openid organization:{other}"
    )
    claims = await _verified(keycloak, console_tokens(keycloak, credentials["console_client"], outcome))
    assert set(claims["organization"]) == {other}
    assert (await orgs.suspend(alias)).enabled is False  # idempotent

    resumed = await orgs.resume(alias)
    assert resumed.enabled is True
    assert browser_login(keycloak, "socle-console", user.username, user.password).redirect is not None
    assert (await orgs.resume(alias)).enabled is True


async def test_delete_removes_the_organization_once(platform_keycloak) -> None:
    orgs = Organizations(platform_keycloak)
    alias = _alias()
    await orgs.ensure(alias, name=alias, tenant_id=uuid.uuid4())
    assert await orgs.delete(alias) is True
    assert await orgs.get(alias) is None
    assert await orgs.delete(alias) is False
    with pytest.raises(KeycloakNotFound):
        await orgs.add_member(alias, str(uuid.uuid4()))


async def test_service_account_client_is_bound_to_its_tenant(platform_keycloak, kc_admin) -> None:
    from tests.support.keycloak_admin import ClientCredentials

    clients = ServiceAccountClients(platform_keycloak)
    internal, tenant = uuid.uuid4(), uuid.uuid4()
    issued = await clients.create(
        internal, f"sa-test-{internal.hex[:8]}", alias="commune-35238", tenant_id=tenant, access="write"
    )
    token = kc_admin.token(ClientCredentials(issued.client_id, issued.secret, str(internal)))
    assert token["expires_in"] <= 300
    rotated = await clients.rotate_secret(internal)
    assert rotated.secret != issued.secret
    with pytest.raises(AssertionError, match="401"):
        kc_admin.token(ClientCredentials(issued.client_id, issued.secret, str(internal)))
    kc_admin.token(ClientCredentials(issued.client_id, rotated.secret, str(internal)))
    assert await clients.delete(internal) is True
    with pytest.raises(AssertionError, match="401"):
        kc_admin.token(ClientCredentials(issued.client_id, rotated.secret, str(internal)))
    assert await clients.delete(internal) is False


async def test_wrong_platform_secret_is_an_auth_error(keycloak) -> None:
    async with KeycloakAdminClient(keycloak.url, "socle", "socle-platform", "wrong") as client:
        with pytest.raises(KeycloakAuthError, match="n'obtient pas de jeton"):
            await Organizations(client).get("commune-00000")


async def test_token_is_cached_until_expiry(keycloak, credentials) -> None:
    transport = Faults()
    async with _platform(keycloak, credentials, transport) as client:
        await Organizations(client).get("commune-00000")
        await Organizations(client).get("commune-00001")
    token_calls = [c for c in transport.calls if c.request.url.path.endswith("/protocol/openid-connect/token")]
    assert len(token_calls) == 1


def _platform(keycloak, credentials, transport: Faults) -> KeycloakAdminClient:
    """The platform client on the real realm, through ``transport``, retrying without a pause."""
    return KeycloakAdminClient(
        keycloak.url, "socle", "socle-platform", credentials["platform_client"], backoff_seconds=0, transport=transport
    )


async def test_server_errors_and_connection_failures_are_retried(keycloak, credentials) -> None:
    faults = Faults(httpx.ConnectError, 503, method="GET", path="/admin/realms/socle/organizations")
    async with _platform(keycloak, credentials, faults) as client:
        assert await Organizations(client).get(_alias()) is None
    assert faults.calls[0].request.url.path.endswith("/protocol/openid-connect/token")
    assert faults.calls[0].answer == 200
    assert [(c.answer, c.injected) for c in faults.matching()[:3]] == [
        ("ConnectError", True),
        (503, True),
        (200, False),
    ]


async def test_persistent_failure_is_unavailable_after_the_last_attempt(keycloak, credentials) -> None:
    faults = Faults(*[httpx.ReadTimeout] * 3, method="GET", path="/admin/realms/socle/organizations")
    async with _platform(keycloak, credentials, faults) as client:
        with pytest.raises(KeycloakUnavailable, match="après 3 tentatives : ReadTimeout"):
            await Organizations(client).get(_alias())
    assert faults.injected == 3
    assert [c.answer for c in faults.calls] == [200, "ReadTimeout", "ReadTimeout", "ReadTimeout"]  # the token, real


async def test_a_refusal_is_not_retried_and_carries_keycloaks_message(platform_keycloak, keycloak, credentials) -> None:
    name = f"Commune {uuid.uuid4().hex[:8]}"
    await Organizations(platform_keycloak).ensure(_alias(), name=name, tenant_id=uuid.uuid4())
    faults = Faults()  # nothing injected: the 409 is Keycloak's own answer to a second organization of that name
    async with _platform(keycloak, credentials, faults) as client:
        with pytest.raises(KeycloakConflict, match="same name") as refused:
            await client.request("POST", "/organizations", json={"name": name, "alias": _alias()})
    assert refused.value.status == 409
    assert [(c.request.method, c.answer) for c in faults.calls] == [("POST", 200), ("POST", 409)]  # token, then once


async def test_a_member_logging_into_the_console_gets_their_tenant(
    platform_keycloak, realm_user, keycloak, credentials
) -> None:
    orgs = Organizations(platform_keycloak)
    alias, tenant = _alias(), uuid.uuid4()
    await orgs.ensure(alias, name=alias, tenant_id=tenant)
    agent = realm_user("commune-agent")
    await orgs.add_member(alias, agent.id)
    outcome = browser_login(keycloak, "socle-console", agent.username, agent.password, scope="openid organization")
    tokens = console_tokens(keycloak, credentials["console_client"], outcome)
    principal = principal_from_claims(await _verified(keycloak, tokens))
    assert principal.organization == alias, principal.claims.get("organization")
    assert principal.tenant is not None
    assert principal.tenant.uuid == tenant
    assert "commune-agent" in principal.roles


async def test_invite_sends_keycloaks_invitation_email(platform_keycloak, smtp_sink) -> None:
    orgs = Organizations(platform_keycloak)
    alias = _alias()
    await orgs.ensure(alias, name=f"Mairie {alias}", tenant_id=uuid.uuid4())
    email = f"agent-{uuid.uuid4().hex[:6]}@{alias}.fr"
    await orgs.invite(alias, email, first_name="Camille", last_name="Martin")
    sent = [m for m in smtp_sink.messages if email in m[1]]
    assert len(sent) == 1
    message = email_parser.message_from_bytes(sent[0][2])
    text = "".join(
        part.get_payload(decode=True).decode() for part in message.walk() if part.get_content_maintype() == "text"
    )
    assert f"Mairie {alias}" in text
    assert "/realms/socle/" in text  # the invitation link


async def test_invite_into_an_unknown_organization_is_not_found(platform_keycloak) -> None:
    orgs = Organizations(platform_keycloak)
    with pytest.raises(KeycloakNotFound):
        await orgs.invite(_alias(), "nobody@example.fr")
