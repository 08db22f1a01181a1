"""ProConnect federation end to end, with a second realm of the same Keycloak standing in for ProConnect.

The upstream realm (``infra/keycloak/test/proconnect-upstream-realm.json``) issues ProConnect's
claims (``siret``, ``given_name``, ``usual_name``, ``email``, ``uid``) and answers userinfo as a
signed JWT. The socle realm's ``proconnect`` provider is configured the way ``make up`` does it:
endpoints from the upstream discovery document, filled into the realm file's placeholders.
Logins are driven with httpx through the real login pages, without a browser.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from litestar.testing import AsyncTestClient

from socle_devstack.stack import REPO_ROOT, proconnect_env
from socle_identity.app import create_app
from socle_identity.config import IdentitySettings
from tests.core.test_app import assert_problem
from tests.support.apps import settings_kwargs
from tests.support.browser import Browser, authorization_request, fields, form_action, redirect_target
from tests.support.keycloak_admin import admin_api
from tests.support.tokens import unverified_claims

UPSTREAM = "proconnect-upstream"
UPSTREAM_CLIENT = ("socle-broker", "test-only-proconnect-upstream-secret")
CALLBACK = "http://localhost:18199/federation/callback"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)(?::([^}]*))?\}")


def rendered_realm(env: dict[str, str]) -> dict[str, Any]:
    """The socle realm file as Keycloak imports it with ``env``: ``${VAR:default}`` replaced."""
    text = (REPO_ROOT / "infra" / "keycloak" / "socle-realm.json").read_text()

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        return default if default is not None else match.group(0)

    return dict(json.loads(_PLACEHOLDER.sub(value, text)))


def _upstream(keycloak, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return admin_api(keycloak, method, f"/{UPSTREAM}{path}", **kwargs)


@pytest.fixture(scope="module")
def proconnect(kc_admin, keycloak):
    """Enable the realm's ProConnect provider against the upstream realm; restore the imported one after."""
    imported = kc_admin.request("GET", "/identity-provider/instances/proconnect").json()
    env = proconnect_env(f"{keycloak.url}/realms/{UPSTREAM}/.well-known/openid-configuration")
    env.update(SOCLE_PROCONNECT_CLIENT_ID=UPSTREAM_CLIENT[0], SOCLE_PROCONNECT_CLIENT_SECRET=UPSTREAM_CLIENT[1])
    wanted = next(p for p in rendered_realm(env)["identityProviders"] if p["alias"] == "proconnect")
    configured = {**imported, **wanted, "enabled": True, "config": {**imported["config"], **wanted["config"]}}
    kc_admin.request("PUT", "/identity-provider/instances/proconnect", json=configured)
    yield imported
    kc_admin.request("PUT", "/identity-provider/instances/proconnect", json=imported)


@pytest.fixture(scope="module")
def relying_party(kc_admin) -> tuple[str, str]:
    """A confidential client of the socle realm standing for the console (code flow, socle-api audience)."""
    client = kc_admin.create_code_flow_client("federation", CALLBACK)
    return client.client_id, client.secret


@dataclass
class Agent:
    """A ProConnect agent of the upstream realm."""

    username: str
    password: str
    email: str
    siret: str
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)


def upstream_agent(keycloak, siret: str) -> Agent:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    agent = Agent(name, f"Pw-{secrets.token_urlsafe(12)}9a", f"{name}@mairie.example.gouv.fr", siret)
    _upstream(
        keycloak,
        "POST",
        "/users",
        json={
            "username": agent.username,
            "email": agent.email,
            "emailVerified": True,
            "firstName": "Dominique",
            "lastName": "Lefèvre",
            "enabled": True,
            "attributes": {"siret": [siret], "uid": [agent.uid]},
            "credentials": [{"type": "password", "value": agent.password, "temporary": False}],
        },
    )
    return agent


@dataclass
class Commune:
    alias: str
    tenant_id: uuid.UUID
    siren: str
    org_id: str


@pytest.fixture
def commune_b(kc_admin) -> Commune:
    """An onboarded commune: its organization carries ``tenant_id`` and ``siren`` attributes."""
    siren = "2" + "".join(secrets.choice("0123456789") for _ in range(8))
    alias, tenant = f"commune-{uuid.uuid4().hex[:6]}", uuid.uuid4()
    response = kc_admin.request(
        "POST",
        "/organizations",
        json={
            "name": alias,
            "alias": alias,
            "enabled": True,
            "attributes": {"tenant_id": [str(tenant)], "siren": [siren]},
            "domains": [{"name": f"{alias}.example.fr", "verified": False}],
        },
    )
    return Commune(alias, tenant, siren, response.headers["Location"].rsplit("/", 1)[-1])


@dataclass
class Login:
    redirect: str | None
    page: str
    verifier: str
    upstream_request: dict[str, list[str]]


def broker_login(
    keycloak, client_id: str, agent: Agent, tamper: Callable[[dict[str, list[str]]], None] | None = None
) -> Login:
    """Start at the socle realm with ``kc_idp_hint=proconnect`` and follow redirects and forms to the callback.

    ``tamper`` may change the query of the broker's request to the upstream provider on its way,
    as an attacker or a faulty provider would.

    Cookies and redirects are the ``Browser``'s; every form is posted with its fields as found,
    and with the agent's credentials where it asks for a password.
    """
    authorize, verifier = authorization_request(
        keycloak.issuer, client_id, CALLBACK, scope="openid organization", kc_idp_hint="proconnect"
    )
    upstream_auth = f"{keycloak.url}/realms/{UPSTREAM}/protocol/openid-connect/auth"
    seen_upstream: dict[str, list[str]] = {}

    def watched(url: str) -> bool:
        return url.startswith((CALLBACK, upstream_auth))

    with closing(Browser()) as browser:
        response = browser.follow(browser.send("GET", authorize), watched)
        for _ in range(15):
            if response.is_redirect:
                location = redirect_target(response)
                if location.startswith(CALLBACK):
                    return Login(location, "", verifier, seen_upstream)
                seen_upstream = parse_qs(urlsplit(location).query)
                if tamper is not None:
                    tamper(seen_upstream)
                    location = f"{upstream_auth}?{urlencode(seen_upstream, doseq=True)}"
                response = browser.follow(browser.send("GET", location), watched)
            elif form_action(response) is None:
                return Login(None, response.text, verifier, seen_upstream)
            else:
                asks = "password" in fields(response)
                credentials = {"username": agent.username, "password": agent.password} if asks else {}
                response = browser.follow(browser.submit(response, **credentials), watched)
    return Login(None, response.text, verifier, seen_upstream)


def tokens(keycloak, relying_party: tuple[str, str], **grant: str) -> dict[str, Any]:
    response = httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={"client_id": relying_party[0], "client_secret": relying_party[1], **grant},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def code_tokens(keycloak, relying_party: tuple[str, str], login: Login) -> dict[str, Any]:
    assert login.redirect is not None, f"the brokered login did not complete: {login.page[:3000]}"
    code = parse_qs(urlsplit(login.redirect).query)["code"][0]
    return tokens(
        keycloak,
        relying_party,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CALLBACK,
        code_verifier=login.verifier,
    )


def socle_user(kc_admin, agent: Agent) -> dict[str, Any]:
    found = kc_admin.request("GET", "/users", params={"email": agent.email, "exact": "true"}).json()
    assert len(found) == 1, found
    return dict(found[0])


@pytest.fixture(scope="module")
def operator(kc_admin) -> dict[str, str]:
    client = kc_admin.create_client(roles=("operator",))
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


def test_the_realm_declares_proconnect_disabled_until_configured(proconnect, kc_admin) -> None:
    imported = proconnect
    assert imported["enabled"] is False
    assert imported["providerId"] == "proconnect-oidc"  # Socle's provider: the OIDC broker with a long nonce
    config = imported["config"]
    assert config["clientId"] == "not-configured"
    assert config["defaultScope"] == "openid email given_name usual_name siret uid"
    assert config["pkceEnabled"] == "true"
    assert config["pkceMethod"] == "S256"
    assert config["validateSignature"] == "true"
    assert config["useJwksUrl"] == "true"
    mappers = kc_admin.request("GET", "/identity-provider/instances/proconnect/mappers").json()
    by_claim = {m["config"]["claim"]: m["config"]["user.attribute"] for m in mappers}
    assert by_claim == {
        "email": "email",
        "given_name": "firstName",
        "usual_name": "lastName",
        "siret": "siret",
        "uid": "proconnect_uid",
    }


def test_only_administrators_may_change_an_agents_siret(kc_admin) -> None:
    profile = kc_admin.request("GET", "/users/profile").json()
    attributes = {a["name"]: a for a in profile["attributes"]}
    assert attributes["siret"]["permissions"]["edit"] == ["admin"]
    assert attributes["proconnect_uid"]["permissions"] == {"view": ["admin"], "edit": ["admin"]}


def test_discovery_fills_every_endpoint_placeholder(keycloak) -> None:
    discovery = f"{keycloak.url}/realms/{UPSTREAM}/.well-known/openid-configuration"
    env = proconnect_env(discovery)
    upstream = f"{keycloak.url}/realms/{UPSTREAM}"
    assert env["SOCLE_PROCONNECT_ENABLED"] == "true"
    assert env["SOCLE_PROCONNECT_ISSUER"] == upstream
    assert env["SOCLE_PROCONNECT_AUTHORIZATION_URL"] == f"{upstream}/protocol/openid-connect/auth"
    assert env["SOCLE_PROCONNECT_USERINFO_URL"] == f"{upstream}/protocol/openid-connect/userinfo"
    provider = next(p for p in rendered_realm(env)["identityProviders"] if p["alias"] == "proconnect")
    assert provider["enabled"] == "true"
    assert provider["config"]["jwksUrl"] == env["SOCLE_PROCONNECT_JWKS_URL"]
    assert not any("proconnect.invalid" in str(v) for v in provider["config"].values())


async def test_an_agent_with_a_siret_of_commune_b_lands_in_b(
    proconnect, relying_party, commune_b, keycloak, kc_admin, identity, operator
) -> None:
    agent = upstream_agent(keycloak, commune_b.siren + "00017")
    login = broker_login(keycloak, relying_party[0], agent)
    first = code_tokens(keycloak, relying_party, login)

    # The broker asked the upstream provider for ProConnect's scopes, with PKCE and a long state.
    assert login.upstream_request["scope"] == ["openid email given_name usual_name siret uid"]
    assert login.upstream_request["code_challenge_method"] == ["S256"]
    assert len(login.upstream_request["state"][0]) >= 32

    user = socle_user(kc_admin, agent)
    assert (user["firstName"], user["lastName"]) == ("Dominique", "Lefèvre")
    assert user["attributes"]["siret"] == [agent.siret]
    assert user["attributes"]["proconnect_uid"] == [agent.uid]
    links = kc_admin.request("GET", f"/users/{user['id']}/federated-identity").json()
    assert [link["identityProvider"] for link in links] == ["proconnect"]
    assert "organization" not in unverified_claims(first["access_token"])  # not placed yet

    response = await identity.post("/v1/placements/sync", headers=operator)
    assert response.status_code == 200, response.text
    report = response.json()
    placed = [p for p in report["placed"] if p["user_id"] == user["id"]]
    assert placed == [
        {
            "user_id": user["id"],
            "username": user["username"],
            "siret": agent.siret,
            "organization": commune_b.alias,
            "tenant_id": str(commune_b.tenant_id),
            "reason": None,
        }
    ]
    members = kc_admin.request("GET", f"/organizations/{commune_b.org_id}/members").json()
    assert [m["id"] for m in members] == [user["id"]]

    # The agent's next token names commune B, and every service reads it as tenant B.
    refreshed = tokens(keycloak, relying_party, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert set(unverified_claims(refreshed["access_token"])["organization"]) == {commune_b.alias}
    me = await identity.get("/v1/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["tenant_id"] == str(commune_b.tenant_id)
    assert me.json()["organization"] == commune_b.alias

    # Idempotent: the next run finds the agent already placed and changes nothing.
    again = (await identity.post("/v1/placements/sync", headers=operator)).json()
    assert user["id"] not in [p["user_id"] for p in again["placed"] + again["unplaced"]]
    assert again["already_members"] >= 1
    assert len(kc_admin.request("GET", f"/organizations/{commune_b.org_id}/members").json()) == 1


async def test_an_unknown_siret_stays_unplaced_and_is_reported(
    proconnect, relying_party, keycloak, kc_admin, identity, operator
) -> None:
    agent = upstream_agent(keycloak, "199999999" + "00011")
    code_tokens(keycloak, relying_party, broker_login(keycloak, relying_party[0], agent))
    user = socle_user(kc_admin, agent)

    report = (await identity.post("/v1/placements/sync", headers=operator)).json()
    assert {"user_id": user["id"], "username": user["username"], "siret": agent.siret} | {
        "organization": None,
        "tenant_id": None,
        "reason": "unknown-siren",
    } in report["unplaced"]
    assert user["id"] not in [p["user_id"] for p in report["placed"]]
    assert kc_admin.request("GET", f"/organizations/members/{user['id']}/organizations").json() == []


async def test_the_background_task_places_agents_without_being_asked(
    proconnect, relying_party, commune_b, keycloak, kc_admin, clean_socle_env, database, credentials
) -> None:
    agent = upstream_agent(keycloak, commune_b.siren + "00025")
    code_tokens(keycloak, relying_party, broker_login(keycloak, relying_party[0], agent))
    user = socle_user(kc_admin, agent)
    settings = IdentitySettings(
        **settings_kwargs(
            "identity",
            database,
            keycloak,
            keycloak_client_secret=credentials["platform_client"],
            placement_sync_interval_seconds=0.5,
        )
    )
    async with AsyncTestClient(create_app(settings)):
        for _ in range(40):
            members = kc_admin.request("GET", f"/organizations/{commune_b.org_id}/members").json()
            if members:
                break
            await asyncio.sleep(0.5)
    assert [m["id"] for m in members] == [user["id"]]


async def test_placement_is_for_operators_only(identity, kc_admin) -> None:
    agent = kc_admin.create_client(roles=("commune-agent",), organization=("commune-35238", uuid.uuid4()))
    headers = {"Authorization": f"Bearer {kc_admin.token(agent)['access_token']}"}
    body = assert_problem(await identity.post("/v1/placements/sync", headers=headers), 403, "forbidden")
    assert "operator" in body["detail"]
    assert_problem(await identity.post("/v1/placements/sync"), 401, "unauthenticated")


def test_the_broker_sends_proconnect_a_nonce_of_at_least_32_characters(
    proconnect, relying_party, keycloak, kc_admin
) -> None:
    """ProConnect asks for 32+ characters; Socle's ``proconnect-oidc`` provider sends 32 random bytes.

    The login completing proves Keycloak checked the ID token's nonce against the one this
    provider stored: the upstream realm echoes the nonce it was sent, and a mismatch would end
    the login on an error page.
    """
    agents = [upstream_agent(keycloak, "299999999" + "00011") for _ in range(2)]
    logins = [broker_login(keycloak, relying_party[0], agent) for agent in agents]
    nonces = [login.upstream_request["nonce"] for login in logins]

    assert all(len(nonce) == 1 for nonce in nonces), nonces  # one nonce, replaced rather than added
    assert [len(nonce[0]) for nonce in nonces] == [43, 43]  # 32 bytes, base64url without padding
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce[0]) for nonce in nonces)
    assert nonces[0] != nonces[1]  # fresh for every login
    assert len(logins[0].upstream_request["state"][0]) >= 32

    first = code_tokens(keycloak, relying_party, logins[0])
    assert unverified_claims(first["access_token"])["email"] == agents[0].email
    user = socle_user(kc_admin, agents[0])
    links = kc_admin.request("GET", f"/users/{user['id']}/federated-identity").json()
    assert [link["identityProvider"] for link in links] == ["proconnect"]


def test_an_id_token_with_another_nonce_is_refused(proconnect, relying_party, keycloak, kc_admin) -> None:
    """The broker still checks the nonce: an upstream ID token carrying a different one ends the login."""
    agent = upstream_agent(keycloak, "299999999" + "00029")
    sent: list[str] = []

    def replace_nonce(query: dict[str, list[str]]) -> None:
        sent.extend(query["nonce"])
        query["nonce"] = [secrets.token_urlsafe(32)]

    login = broker_login(keycloak, relying_party[0], agent, tamper=replace_nonce)

    assert len(sent) == 1
    assert len(sent[0]) == 43
    assert login.redirect is None, login.redirect
    assert json.loads(login.page) == {"error": "invalid_token", "error_description": "invalid nonce"}
    assert kc_admin.request("GET", "/users", params={"email": agent.email, "exact": "true"}).json() == []
