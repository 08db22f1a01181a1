"""The audit feed on the real Keycloak and PostgreSQL: Keycloak's events land in the tenants' chains.

Logins, failed logins, refreshes and logouts of a commune's agent, every token a service
account obtains, and admin API changes (role mappings, organization membership) are read
back from ``tenancy.audit_entries``, each in the chain of the tenant it concerns. Imports
are idempotent (a second run, or a run after a crash mid-page, writes nothing twice) and
the chains still verify.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_core.audit import PLATFORM_TENANT
from socle_core.db import create_session_maker
from socle_devstack.stack import DATABASE, _with_database
from socle_identity.app import create_app
from socle_identity.config import IdentitySettings
from socle_identity.domain.audit_feed.services import AuditFeed
from socle_tenancy.domain.audit.services import verify
from tests.core.test_app import assert_problem
from tests.support.apps import settings_kwargs
from tests.support.keycloak_admin import (
    ClientCredentials,
    Commune,
    KeycloakAdmin,
    RealmUser,
    create_commune,
    create_user,
)


def join(kc_admin: KeycloakAdmin, commune: Commune, user: RealmUser) -> None:
    kc_admin.request("POST", f"/organizations/{commune.org_id}/members", json=user.id)


def _settings(database, keycloak, credentials, **overrides: Any) -> IdentitySettings:
    """No background runs unless a test asks: each test imports when it wants to look."""
    wanted: dict[str, Any] = {
        "keycloak_client_secret": credentials["platform_client"],
        "placement_sync_interval_seconds": 0,
        "audit_feed_interval_seconds": 0,
        "invitation_sync_interval_seconds": 0,
        "audit_feed_lookback_seconds": 3600,
    }
    return IdentitySettings(**settings_kwargs("identity", database, keycloak, **(wanted | overrides)))


@pytest.fixture
async def identity(clean_socle_env, database, keycloak, credentials):
    async with AsyncTestClient(create_app(_settings(database, keycloak, credentials))) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def operator(kc_admin) -> dict[str, str]:
    return _bearer(kc_admin.token(kc_admin.create_client(roles=("operator",)))["access_token"])


@pytest.fixture(scope="module")
def login_client(kc_admin) -> ClientCredentials:
    """A confidential client allowed the password grant: agents log in through it without a browser."""
    return kc_admin.create_client(direct_access=True)


def token_request(keycloak, client: ClientCredentials, **data: str) -> httpx.Response:
    return httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={"client_id": client.client_id, "client_secret": client.secret, **data},
        timeout=20,
    )


def password_login(keycloak, client: ClientCredentials, user: RealmUser, password: str | None = None, **extra: str):
    return token_request(
        keycloak, client, grant_type="password", username=user.username, password=password or user.password, **extra
    )


def logout(keycloak, client: ClientCredentials, refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/logout",
        data={"client_id": client.client_id, "client_secret": client.secret, "refresh_token": refresh_token},
        timeout=20,
    )


async def chain(database, tenant: uuid.UUID) -> list[dict[str, Any]]:
    """A tenant's chain as stored, read as the superuser (no tenant context needed)."""
    connection = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        rows = await connection.fetch(
            "SELECT seq, actor, action, target, outcome, details::text AS details "
            "FROM tenancy.audit_entries WHERE tenant_id = $1 ORDER BY seq",
            tenant,
        )
    finally:
        await connection.close()
    return [dict(r) | {"details": json.loads(r["details"])} for r in rows]


def of_event(entries: list[dict[str, Any]], action: str, **details: Any) -> list[dict[str, Any]]:
    return [e for e in entries if e["action"] == action and all(e["details"].get(k) == v for k, v in details.items())]


@pytest.fixture(scope="module")
async def tenancy_engine(database) -> AsyncIterator[AsyncEngine]:
    """The tenancy application role, which verifies the chains."""
    engine = create_async_engine(database.url("tenancy", "app"))
    yield engine
    await engine.dispose()


async def sync(identity, operator) -> dict[str, Any]:
    response = await identity.post("/v1/audit-feed/sync", headers=operator)
    assert response.status_code == 200, response.text
    return {s["stream"]: s for s in response.json()["streams"]}


def test_the_realm_stores_every_event_type_the_feed_imports(kc_admin) -> None:
    from socle_identity.domain.audit_feed.translation import EVENT_ACTIONS

    enabled = set(kc_admin.request("GET", "/events/config").json()["enabledEventTypes"])
    wanted = {"LOGIN", "LOGIN_ERROR", "LOGOUT", "CODE_TO_TOKEN", "REFRESH_TOKEN", "CLIENT_LOGIN", "CLIENT_LOGIN_ERROR"}
    assert wanted <= enabled
    assert set(EVENT_ACTIONS) <= enabled, set(EVENT_ACTIONS) - enabled


async def test_an_agents_logins_land_in_the_communes_chain(
    identity, operator, keycloak, kc_admin, login_client, database, tenancy_engine
) -> None:
    commune = create_commune(kc_admin)
    agent = create_user(kc_admin, "commune-agent")
    join(kc_admin, commune, agent)
    refused = password_login(keycloak, login_client, agent, password="not-the-password")
    assert refused.status_code == 401
    tokens = password_login(keycloak, login_client, agent)
    assert tokens.status_code == 200, tokens.text
    refreshed = token_request(
        keycloak, login_client, grant_type="refresh_token", refresh_token=tokens.json()["refresh_token"]
    )
    assert refreshed.status_code == 200, refreshed.text
    assert logout(keycloak, login_client, refreshed.json()["refresh_token"]).status_code == 204

    report = await sync(identity, operator)
    assert report["events"]["imported"] >= 4
    assert report["events"]["imported_until"] is not None

    entries = await chain(database, commune.tenant_id)
    who = {"user_id": agent.id, "client_id": login_client.client_id}
    failed = of_event(entries, "login.failed", **who)
    assert len(failed) == 1
    assert failed[0]["outcome"] == "refused"
    assert failed[0]["actor"] == agent.id
    assert failed[0]["target"] == f"client:{login_client.client_id}"
    assert failed[0]["details"]["error"] == "invalid_user_credentials"
    assert failed[0]["details"]["username"] == agent.username
    assert failed[0]["details"]["keycloak_type"] == "LOGIN_ERROR"
    login = of_event(entries, "login.success", **who)
    assert len(login) == 1
    assert login[0]["outcome"] == "success"
    assert login[0]["details"]["grant_type"] == "password"
    assert login[0]["details"]["session_id"]
    assert not {"token_id", "refresh_token_id"} & set(login[0]["details"])  # no token identifiers kept
    assert len(of_event(entries, "token.refresh", **who)) == 1
    assert len(of_event(entries, "logout.success", **who)) == 1
    # Chain order follows the order the events happened in.
    order = [
        e["action"] for e in entries if e["details"].get("user_id") == agent.id and "keycloak_type" in e["details"]
    ]
    assert order == ["login.failed", "login.success", "token.refresh", "logout.success"]
    # Nothing of this agent went anywhere else.
    platform = await chain(database, PLATFORM_TENANT)
    assert of_event(platform, "login.success", user_id=agent.id) == []

    verdict = await verify(create_session_maker(tenancy_engine), [commune.tenant_id, PLATFORM_TENANT])
    assert verdict.ok, verdict.findings
    assert verdict.entries >= len(entries)


async def test_an_agent_of_two_communes_is_audited_only_in_the_commune_they_acted_in(
    identity, operator, keycloak, kc_admin, login_client, database
) -> None:
    """Another commune never reads a shared agent's logins, addresses, sessions or failures."""
    first, second = create_commune(kc_admin), create_commune(kc_admin)
    agent = create_user(kc_admin, "commune-agent")
    join(kc_admin, first, agent)
    join(kc_admin, second, agent)
    chosen = password_login(keycloak, login_client, agent, scope=f"openid organization:{second.alias}")
    assert chosen.status_code == 200, chosen.text
    await sync(identity, operator)
    assert len(of_event(await chain(database, second.tenant_id), "login.success", user_id=agent.id)) == 1
    assert of_event(await chain(database, first.tenant_id), "login.success", user_id=agent.id) == []

    # Naming no commune (or failing to log in) is acting in none of them: the platform's chain only.
    unnamed = password_login(keycloak, login_client, agent)
    assert unnamed.status_code == 200, unnamed.text
    assert password_login(keycloak, login_client, agent, password="not-the-password").status_code == 401
    await sync(identity, operator)
    for commune, logins in ((first, 0), (second, 1)):
        entries = await chain(database, commune.tenant_id)
        assert len(of_event(entries, "login.success", user_id=agent.id)) == logins
        assert of_event(entries, "login.failed", user_id=agent.id) == []
    platform = await chain(database, PLATFORM_TENANT)
    assert len(of_event(platform, "login.success", user_id=agent.id)) == 1
    assert len(of_event(platform, "login.failed", user_id=agent.id)) == 1


async def test_every_token_of_a_service_account_is_audited_in_its_communes_chain(
    identity, operator, keycloak, kc_admin, database, tenancy_engine
) -> None:
    commune = create_commune(kc_admin)
    admin_client = kc_admin.create_client(organization=(commune.alias, commune.tenant_id), roles=("commune-admin",))
    admin_token = kc_admin.token(admin_client)["access_token"]
    admin_subject = (await identity.get("/v1/me", headers=_bearer(admin_token))).json()["subject"]
    admin = _bearer(admin_token)

    created = await identity.post(
        "/v1/service-accounts", json={"name": "TTS uplinks", "access": "write"}, headers=admin
    )
    assert created.status_code == 201, created.text
    account = created.json()
    device = ClientCredentials(account["client_id"], account["client_secret"], account["id"])
    token = token_request(keycloak, device, grant_type="client_credentials")
    assert token.status_code == 200, token.text
    device_subject = (await identity.get("/v1/me", headers=_bearer(token.json()["access_token"]))).json()["subject"]
    wrong = token_request(keycloak, ClientCredentials(device.client_id, "wrong", ""), grant_type="client_credentials")
    assert wrong.status_code == 401
    rotated = await identity.post(f"/v1/service-accounts/{account['id']}/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert (await identity.delete(f"/v1/service-accounts/{account['id']}", headers=admin)).status_code == 204
    after_revocation = token_request(
        keycloak,
        ClientCredentials(device.client_id, rotated.json()["client_secret"], ""),
        grant_type="client_credentials",
    )
    assert after_revocation.status_code in (400, 401)

    # The identity service's own records, written with each change.
    entries = await chain(database, commune.tenant_id)
    own = [e for e in entries if e["action"].startswith("service_account.") and "keycloak_type" not in e["details"]]
    assert [(e["action"], e["actor"], e["target"]) for e in own] == [
        (action, admin_subject, f"service_account:{account['id']}")
        for action in ("service_account.created", "service_account.rotated", "service_account.revoked")
    ]
    assert own[0]["details"] == {"client_id": device.client_id, "name": "TTS uplinks", "access": "write"}

    await sync(identity, operator)
    entries = await chain(database, commune.tenant_id)
    issued = of_event(entries, "service_account.token", client_id=device.client_id)
    assert len(issued) == 1
    # The actor is the token's subject: the one every service records for calls made with it.
    assert issued[0]["actor"] == device_subject
    assert issued[0]["details"]["grant_type"] == "client_credentials"
    refusals = of_event(entries, "service_account.token_refused", client_id=device.client_id)
    # The wrong secret, and the request after revocation (the client is gone: found by its alias).
    assert len(refusals) == 2
    assert {e["outcome"] for e in refusals} == {"refused"}
    assert refusals[0]["details"]["error"] == "invalid_client_credentials"
    # The commune admin's own token request is one of the commune's too (its client names the commune).
    assert len(of_event(entries, "service_account.token", client_id=admin_client.client_id)) == 1
    # The Keycloak side, done by the platform client, is in the same chain, down to the deletion
    # (found through the creation's client id, read in the same run); secrets are not copied.
    client_path = f"clients/{account['id']}"
    keycloak_side = [(e["action"], e["target"]) for e in entries if (e["target"] or "").startswith(client_path)]
    assert ("admin.client.create", client_path) in keycloak_side
    assert ("admin.client.action", f"{client_path}/client-secret") in keycloak_side
    assert ("admin.client.delete", client_path) in keycloak_side
    assert rotated.json()["client_secret"] not in json.dumps(entries)

    verdict = await verify(create_session_maker(tenancy_engine), [commune.tenant_id])
    assert verdict.ok, verdict.findings


async def test_role_and_membership_changes_by_the_admin_api_are_audited(identity, operator, kc_admin, database) -> None:
    commune = create_commune(kc_admin)
    agent = create_user(kc_admin)
    join(kc_admin, commune, agent)
    role = kc_admin.request("GET", "/roles/commune-admin").json()
    kc_admin.request("POST", f"/users/{agent.id}/role-mappings/realm", json=[role])
    kc_admin.request("DELETE", f"/users/{agent.id}/role-mappings/realm", json=[role])

    await sync(identity, operator)
    entries = await chain(database, commune.tenant_id)
    path = f"users/{agent.id}/role-mappings/realm"
    granted = [e for e in entries if e["action"] == "admin.realm_role_mapping.create" and e["target"] == path]
    removed = [e for e in entries if e["action"] == "admin.realm_role_mapping.delete" and e["target"] == path]
    assert len(granted) == len(removed) == 1
    assert granted[0]["details"]["roles"] == ["commune-admin"]
    assert granted[0]["details"]["resource_type"] == "REALM_ROLE_MAPPING"
    assert granted[0]["outcome"] == "success"
    assert granted[0]["actor"]  # the administrator's user id (here the master realm's admin)
    assert "representation" not in granted[0]["details"]
    membership = [
        e
        for e in of_event(entries, "admin.organization_membership.create", username=agent.username)
        if e["target"] == f"organizations/{commune.org_id}/members"
    ]
    assert len(membership) == 1


async def test_a_second_run_imports_nothing_twice(identity, operator, keycloak, kc_admin, login_client, database):
    commune = create_commune(kc_admin)
    agent = create_user(kc_admin, "commune-agent")
    join(kc_admin, commune, agent)
    assert password_login(keycloak, login_client, agent).status_code == 200
    await sync(identity, operator)
    before = await chain(database, commune.tenant_id)
    again = await sync(identity, operator)
    assert again["events"]["already_imported"] >= 1  # the overlap read them again and skipped them
    assert await chain(database, commune.tenant_id) == before
    connection = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        duplicates = await connection.fetch(
            "SELECT tenant_id, details->>'keycloak_event_id' AS id, count(*) FROM tenancy.audit_entries "
            "WHERE details ? 'keycloak_event_id' GROUP BY 1, 2 HAVING count(*) > 1"
        )
    finally:
        await connection.close()
    assert duplicates == []


async def test_a_crash_before_the_cursor_moves_leaves_nothing_half_imported(
    database, keycloak, kc_admin, login_client, platform_keycloak, identity, operator
) -> None:
    commune = create_commune(kc_admin)
    agent = create_user(kc_admin, "commune-agent")
    join(kc_admin, commune, agent)
    assert password_login(keycloak, login_client, agent).status_code == 200

    engine = create_async_engine(database.url("identity", "app"))
    crashes: list[str] = []

    def crash_on_cursor_move(_conn, _cursor, statement: str, *_args: object) -> None:
        if statement.lstrip().startswith("UPDATE identity.keycloak_event_cursor") and not crashes:
            crashes.append(statement)
            raise RuntimeError("injected crash before the cursor moved")

    event.listen(engine.sync_engine, "before_cursor_execute", crash_on_cursor_move)
    try:
        feed = AuditFeed(
            platform_keycloak,
            create_session_maker(engine),
            page_size=500,
            overlap_seconds=120,
            lookback_seconds=3600,
        )
        with pytest.raises(RuntimeError, match="injected crash"):
            await feed.run()
        assert crashes
        # The page's entries rolled back with the cursor: the login is not in the chain yet.
        assert of_event(await chain(database, commune.tenant_id), "login.success", user_id=agent.id) == []
        await feed.run()
    finally:
        await engine.dispose()
    assert len(of_event(await chain(database, commune.tenant_id), "login.success", user_id=agent.id)) == 1
    await sync(identity, operator)
    assert len(of_event(await chain(database, commune.tenant_id), "login.success", user_id=agent.id)) == 1


async def test_the_background_task_imports_without_being_asked(
    clean_socle_env, database, keycloak, credentials, kc_admin, login_client
) -> None:
    commune = create_commune(kc_admin)
    agent = create_user(kc_admin, "commune-agent")
    join(kc_admin, commune, agent)
    assert password_login(keycloak, login_client, agent).status_code == 200
    settings = _settings(database, keycloak, credentials, audit_feed_interval_seconds=0.5)
    async with AsyncTestClient(create_app(settings)):
        for _ in range(60):
            if of_event(await chain(database, commune.tenant_id), "login.success", user_id=agent.id):
                break
            await asyncio.sleep(0.5)
    assert len(of_event(await chain(database, commune.tenant_id), "login.success", user_id=agent.id)) == 1


async def test_only_the_operator_or_the_platform_client_may_run_an_import(identity, kc_admin, credentials, keycloak):
    commune = create_commune(kc_admin)
    admin = kc_admin.create_client(organization=(commune.alias, commune.tenant_id), roles=("commune-admin",))
    refused = await identity.post("/v1/audit-feed/sync", headers=_bearer(kc_admin.token(admin)["access_token"]))
    assert "operator" in assert_problem(refused, 403, "forbidden")["detail"]
    assert_problem(await identity.post("/v1/audit-feed/sync"), 401, "unauthenticated")
    platform = ClientCredentials("socle-platform", credentials["platform_client"], "")
    token = token_request(keycloak, platform, grant_type="client_credentials")
    assert token.status_code == 200, token.text
    allowed = await identity.post("/v1/audit-feed/sync", headers=_bearer(token.json()["access_token"]))
    assert allowed.status_code == 200, allowed.text
    assert [s["stream"] for s in allowed.json()["streams"]] == ["events", "admin-events"]


async def test_the_events_of_a_tenant_the_registry_does_not_know_go_to_the_platform_chain(
    identity, operator, keycloak, kc_admin, login_client, database
) -> None:
    """An organization made by hand in Keycloak, with a tenant id no onboarding registered: no chain starts for it."""
    alias, stray = f"commune-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    response = kc_admin.request(
        "POST",
        "/organizations",
        json={"alias": alias, "name": alias, "enabled": True, "attributes": {"tenant_id": [str(stray)]}},
    )
    commune = Commune(alias, stray, response.headers["Location"].rsplit("/", 1)[-1])
    agent = create_user(kc_admin, "commune-agent")
    join(kc_admin, commune, agent)
    assert password_login(keycloak, login_client, agent).status_code == 200

    await sync(identity, operator)
    assert await chain(database, stray) == []
    landed = of_event(await chain(database, PLATFORM_TENANT), "login.success", user_id=agent.id)
    assert [e["details"]["tenants"] for e in landed] == [[str(stray)]]
