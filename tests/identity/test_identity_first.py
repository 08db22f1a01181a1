"""Identity-first login end to end: the email an agent types decides where they authenticate.

A commune with its own identity provider links it to its organization with its email domain;
the socle realm's ``organization`` step (``socle browser`` flow) then sends an agent who types
an address of that domain straight to it, and Keycloak makes the agent a member of the
commune's organization on their first login. A second realm of the test Keycloak,
``commune-idp-test`` (``infra/keycloak/test/commune-idp-realm.json``, imported by this module
and removed after it), stands in for the commune's IdP. Every organization, provider, client
and user is created here with unique names and deleted at the end. Logins are driven with
httpx through the real login pages, without a browser.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from socle_core.auth import principal_from_claims
from socle_devstack.stack import REPO_ROOT
from tests.support.browser import (
    Browser,
    authorization_request,
    fields,
    input_value,
    providers_offered,
    redirect_target,
    visible_text,
)
from tests.support.keycloak_admin import admin_api
from tests.support.tokens import unverified_claims

COMMUNE_REALM_FILE = REPO_ROOT / "infra" / "keycloak" / "test" / "commune-idp-realm.json"
COMMUNE_REALM = "commune-idp-test"
BROKER_CLIENT = ("socle-broker", "test-only-commune-idp-secret")
CALLBACK = "http://localhost:18199/identity-first/callback"


@dataclass
class Login:
    browser: Browser
    verifier: str
    first_page: httpx.Response


def start_login(keycloak, client_id: str) -> Login:
    """Open the socle realm's authorization endpoint as the console would (code flow, PKCE, no IdP hint)."""
    authorize, verifier = authorization_request(keycloak.issuer, client_id, CALLBACK, scope="openid organization")
    browser = Browser()
    try:
        page = browser.follow(browser.send("GET", authorize))
    except BaseException:
        browser.close()  # the caller only closes the browser of a login it was handed
        raise
    return Login(browser, verifier, page)


@pytest.fixture(scope="module")
def commune_idp(keycloak) -> Iterator[str]:
    """The commune's own IdP: a realm of the test Keycloak, imported for this module; yields its issuer."""
    admin_api(keycloak, "POST", "", json=json.loads(COMMUNE_REALM_FILE.read_text()))
    yield f"{keycloak.url}/realms/{COMMUNE_REALM}"
    admin_api(keycloak, "DELETE", f"/{COMMUNE_REALM}")


@pytest.fixture(scope="module")
def relying_party(kc_admin) -> Iterator[tuple[str, str]]:
    """A confidential client of the socle realm standing for the console (code flow, socle-api audience)."""
    client = kc_admin.create_code_flow_client("identity-first", CALLBACK)
    yield client.client_id, client.secret
    kc_admin.request("DELETE", f"/clients/{client.internal_id}")


@dataclass
class Commune:
    alias: str
    tenant_id: uuid.UUID
    org_id: str
    domain: str
    idp: str | None


def create_organization(kc_admin, domain_prefix: str) -> tuple[str, uuid.UUID, str, str]:
    alias, tenant = f"commune-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    domain = f"{domain_prefix}-{alias[-8:]}.example.fr"
    response = kc_admin.request(
        "POST",
        "/organizations",
        json={
            "name": alias,
            "alias": alias,
            "enabled": True,
            "attributes": {"tenant_id": [str(tenant)]},
            "domains": [{"name": domain, "verified": True}],
        },
    )
    return alias, tenant, response.headers["Location"].rsplit("/", 1)[-1], domain


def delete_organization(kc_admin, org_id: str) -> None:
    """Delete the organization and the realm users that joined it during the test."""
    for member in kc_admin.request("GET", f"/organizations/{org_id}/members").json():
        kc_admin.request("DELETE", f"/users/{member['id']}")
    kc_admin.request("DELETE", f"/organizations/{org_id}")


@pytest.fixture(scope="module")
def commune_b(kc_admin, commune_idp) -> Iterator[Commune]:
    """Commune B: its organization, its domain, and its own OIDC provider linked to both."""
    alias, tenant, org_id, domain = create_organization(kc_admin, "b")
    idp = f"idp-{alias}"
    kc_admin.request(
        "POST",
        "/identity-provider/instances",
        json={
            "alias": idp,
            "displayName": f"Mairie {alias}",
            "providerId": "oidc",
            "enabled": True,
            "trustEmail": True,
            "hideOnLogin": True,
            "config": {
                "issuer": commune_idp,
                "authorizationUrl": f"{commune_idp}/protocol/openid-connect/auth",
                "tokenUrl": f"{commune_idp}/protocol/openid-connect/token",
                "userInfoUrl": f"{commune_idp}/protocol/openid-connect/userinfo",
                "jwksUrl": f"{commune_idp}/protocol/openid-connect/certs",
                "logoutUrl": f"{commune_idp}/protocol/openid-connect/logout",
                "clientId": BROKER_CLIENT[0],
                "clientSecret": BROKER_CLIENT[1],
                "clientAuthMethod": "client_secret_post",
                "defaultScope": "openid email profile",
                "pkceEnabled": "true",
                "pkceMethod": "S256",
                "validateSignature": "true",
                "useJwksUrl": "true",
                "loginHint": "true",
                "syncMode": "IMPORT",
                "kc.org.domain": domain,
                "kc.org.broker.redirect.mode.email-matches": "true",
            },
        },
    )
    kc_admin.request(
        "POST", f"/organizations/{org_id}/identity-providers", content=idp, headers={"Content-Type": "application/json"}
    )
    yield Commune(alias, tenant, org_id, domain, idp)
    delete_organization(kc_admin, org_id)
    kc_admin.request("DELETE", f"/identity-provider/instances/{idp}")


@pytest.fixture
def commune_without_idp(kc_admin) -> Iterator[Commune]:
    """A commune whose agents use ProConnect: its organization declares its domain, no provider is linked."""
    alias, tenant, org_id, domain = create_organization(kc_admin, "c")
    yield Commune(alias, tenant, org_id, domain, None)
    delete_organization(kc_admin, org_id)


@pytest.fixture
def proconnect_enabled(kc_admin) -> Iterator[Callable[[bool], None]]:
    """Show or hide the realm's ``proconnect`` provider for one test; the imported one is restored after."""
    imported = kc_admin.request("GET", "/identity-provider/instances/proconnect").json()

    def set_enabled(enabled: bool) -> None:
        kc_admin.request("PUT", "/identity-provider/instances/proconnect", json={**imported, "enabled": enabled})

    yield set_enabled
    kc_admin.request("PUT", "/identity-provider/instances/proconnect", json=imported)


@dataclass
class Agent:
    username: str
    password: str
    email: str


def commune_agent(keycloak, commune: Commune) -> Agent:
    """An agent account in the commune's own IdP, with an address of the commune's domain."""
    name = f"agent-{uuid.uuid4().hex[:8]}"
    agent = Agent(name, f"Pw-{secrets.token_urlsafe(12)}9a", f"{name}@{commune.domain}")
    admin_api(
        keycloak,
        "POST",
        f"/{COMMUNE_REALM}/users",
        json={
            "username": agent.username,
            "email": agent.email,
            "emailVerified": True,
            "firstName": "Camille",
            "lastName": "Rousseau",
            "enabled": True,
            "credentials": [{"type": "password", "value": agent.password, "temporary": False}],
        },
    )
    return agent


def socle_users(kc_admin, email: str) -> list[dict[str, Any]]:
    return list(kc_admin.request("GET", "/users", params={"email": email, "exact": "true"}).json())


def log_in_at_commune_idp(keycloak, relying_party: tuple[str, str], agent: Agent) -> dict[str, Any]:
    """Type the agent's email on the identity-first page, log in at the commune's IdP, return to the client.

    Returns what the test checks: the first page, the broker's request to the commune's IdP and
    the tokens the client gets for its code.
    """
    login = start_login(keycloak, relying_party[0])
    upstream_auth = f"{keycloak.url}/realms/{COMMUNE_REALM}/protocol/openid-connect/auth"
    try:
        to_upstream = login.browser.follow(
            login.browser.submit(login.first_page, username=agent.email), stop=lambda url: url.startswith(upstream_auth)
        )
        assert to_upstream.is_redirect, f"not sent to the commune's IdP: {visible_text(to_upstream)[:1500]}"
        upstream_request = redirect_target(to_upstream)
        upstream_page = login.browser.send("GET", upstream_request)
        back = login.browser.follow(
            login.browser.submit(upstream_page, username=agent.username, password=agent.password),
            stop=lambda url: url.startswith(CALLBACK),
        )
        assert back.is_redirect, f"the login did not come back: {visible_text(back)[:1500]}"
        callback = redirect_target(back)
        visited = list(login.browser.visited)
    finally:
        login.browser.close()
    response = httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "authorization_code",
            "code": parse_qs(urlsplit(callback).query)["code"][0],
            "redirect_uri": CALLBACK,
            "client_id": relying_party[0],
            "client_secret": relying_party[1],
            "code_verifier": login.verifier,
        },
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return {
        "first_page": login.first_page,
        "upstream_request": upstream_request,
        "upstream_page": upstream_page,
        "visited": visited,
        "tokens": response.json(),
    }


def test_the_commune_idp_is_linked_to_the_organization_and_its_domain(kc_admin, commune_b) -> None:
    provider = kc_admin.request("GET", f"/identity-provider/instances/{commune_b.idp}").json()
    assert provider["organizationId"] == commune_b.org_id
    assert provider["hideOnLogin"] is True  # not a button for every commune's agents: reached by the email only
    assert provider["config"]["kc.org.domain"] == commune_b.domain
    assert provider["config"]["kc.org.broker.redirect.mode.email-matches"] == "true"
    linked = kc_admin.request("GET", f"/organizations/{commune_b.org_id}/identity-providers").json()
    assert [p["alias"] for p in linked] == [commune_b.idp]


async def test_an_agent_of_commune_b_is_sent_to_the_communes_idp_and_lands_in_b(
    keycloak, kc_admin, relying_party, commune_b, identity
) -> None:
    agent = commune_agent(keycloak, commune_b)
    assert socle_users(kc_admin, agent.email) == []

    done = log_in_at_commune_idp(keycloak, relying_party, agent)

    # The first page asks for the email only, and does not advertise the commune's provider.
    first_page = done["first_page"]
    assert set(fields(first_page)) == {"username"}, fields(first_page)
    assert commune_b.idp not in providers_offered(first_page)
    # The typed domain sent the browser through the broker to the commune IdP's authorization endpoint.
    broker_hop = f"{keycloak.issuer}/broker/{commune_b.idp}/login"
    assert any(url.startswith(broker_hop) for url in done["visited"]), done["visited"]
    request = parse_qs(urlsplit(done["upstream_request"]).query)
    assert done["upstream_request"].startswith(f"{keycloak.url}/realms/{COMMUNE_REALM}/protocol/openid-connect/auth?")
    assert request["client_id"] == [BROKER_CLIENT[0]]
    assert request["redirect_uri"] == [f"{keycloak.issuer}/broker/{commune_b.idp}/endpoint"]
    assert request["login_hint"] == [agent.email]
    assert request["code_challenge_method"] == ["S256"]
    assert set(fields(done["upstream_page"])) >= {"username", "password"}
    assert fields(done["upstream_page"])["username"] == agent.email  # the hint pre-fills the commune's page

    # The agent now exists in the socle realm, linked to the commune's provider, and is a member of B.
    [user] = socle_users(kc_admin, agent.email)
    assert (user["firstName"], user["lastName"], user["emailVerified"]) == ("Camille", "Rousseau", True)
    links = kc_admin.request("GET", f"/users/{user['id']}/federated-identity").json()
    assert [(link["identityProvider"], link["userName"]) for link in links] == [(commune_b.idp, agent.username)]
    members = kc_admin.request("GET", f"/organizations/{commune_b.org_id}/members").json()
    assert [(m["id"], m["membershipType"]) for m in members] == [(user["id"], "MANAGED")]

    # The very first token names commune B, and every service reads it as tenant B.
    access = unverified_claims(done["tokens"]["access_token"])
    assert access["organization"] == {
        commune_b.alias: {"id": commune_b.org_id, "tenant_id": [str(commune_b.tenant_id)]}
    }
    principal = principal_from_claims(access)
    assert principal.tenant is not None
    assert principal.tenant.uuid == commune_b.tenant_id
    assert principal.organization == commune_b.alias
    me = await identity.get("/v1/me", headers={"Authorization": f"Bearer {done['tokens']['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["tenant_id"] == str(commune_b.tenant_id)
    assert me.json()["organization"] == commune_b.alias
    assert me.json()["email"] == agent.email


def test_a_returning_agent_goes_to_the_communes_idp_again_and_keeps_one_account(
    keycloak, kc_admin, relying_party, commune_b
) -> None:
    agent = commune_agent(keycloak, commune_b)
    first = log_in_at_commune_idp(keycloak, relying_party, agent)
    again = log_in_at_commune_idp(keycloak, relying_party, agent)

    [user] = socle_users(kc_admin, agent.email)
    assert (
        unverified_claims(first["tokens"]["access_token"])["sub"]
        == unverified_claims(again["tokens"]["access_token"])["sub"]
        == user["id"]
    )
    assert not any("first-broker-login" in url for url in again["visited"])  # an existing link, no onboarding
    member_ids = [m["id"] for m in kc_admin.request("GET", f"/organizations/{commune_b.org_id}/members").json()]
    assert member_ids.count(user["id"]) == 1


def test_a_domain_linked_to_no_organization_gets_the_password_form(
    keycloak, kc_admin, relying_party, commune_b, proconnect_enabled
) -> None:
    proconnect_enabled(False)
    email = f"someone@unknown-{uuid.uuid4().hex[:8]}.example"
    login = start_login(keycloak, relying_party[0])
    try:
        assert set(fields(login.first_page)) == {"username"}
        assert providers_offered(login.first_page) == {}  # ProConnect disabled, commune IdPs hidden
        page = login.browser.submit(login.first_page, username=email)
        assert page.status_code == 200, page.headers.get("location")  # no redirect to any provider
        assert "password" in fields(page)
        assert "username" not in fields(page)
        assert input_value(page, "kc-attempted-username") == email
        assert providers_offered(page) == {}
        assert not any("/broker/" in url for url in login.browser.visited)
    finally:
        login.browser.close()
    assert socle_users(kc_admin, email) == []


def test_proconnect_is_offered_on_the_identity_first_page_when_enabled(
    keycloak, kc_admin, relying_party, commune_b, proconnect_enabled
) -> None:
    """ProConnect serves every commune, so it cannot be linked to one organization: it is a button.

    The button is on the email page and on the password page that follows an unlinked domain;
    following it goes to ProConnect's authorization endpoint. It does not pass the typed email on:
    a button link carries no ``login_hint``.
    """
    proconnect_enabled(True)
    proconnect = kc_admin.request("GET", "/identity-provider/instances/proconnect").json()
    email = f"someone@unknown-{uuid.uuid4().hex[:8]}.example"
    login = start_login(keycloak, relying_party[0])
    try:
        offered = providers_offered(login.first_page)
        assert set(offered) == {"proconnect"}  # and not the commune's hidden provider
        assert offered["proconnect"].startswith("/realms/socle/broker/proconnect/login?")
        page = login.browser.submit(login.first_page, username=email)
        assert input_value(page, "kc-attempted-username") == email
        button = providers_offered(page)["proconnect"]
        to_proconnect = login.browser.send("GET", urljoin(str(page.url), button))
        assert to_proconnect.is_redirect, visible_text(to_proconnect)[:1500]
        location = to_proconnect.headers["location"]
    finally:
        login.browser.close()
    assert location.startswith(proconnect["config"]["authorizationUrl"] + "?")
    request = parse_qs(urlsplit(location).query)
    assert request["redirect_uri"] == [f"{keycloak.issuer}/broker/proconnect/endpoint"]
    assert request["scope"] == ["openid email given_name usual_name siret uid"]
    assert "login_hint" not in request


def test_a_commune_domain_without_its_own_idp_leaves_its_agents_to_proconnect(
    keycloak, kc_admin, relying_party, commune_without_idp, proconnect_enabled
) -> None:
    """A commune whose agents use ProConnect, with its domain declared: Keycloak has nowhere to send them.

    A first-time agent of that domain is told the domain belongs to the commune's organization,
    stays on the email page, and continues with the ProConnect button (placed by SIRET afterwards).
    An agent already a member (placed earlier) is asked for a password, with the button beside it.
    """
    proconnect_enabled(True)
    email = f"new-agent@{commune_without_idp.domain}"
    login = start_login(keycloak, relying_party[0])
    try:
        page = login.browser.submit(login.first_page, username=email)
        assert page.status_code == 200
        assert set(fields(page)) == {"username"}
        assert fields(page)["username"] == email
        assert (
            f"Your email domain matches the {commune_without_idp.alias} organization "
            "but you don't have an account yet." in visible_text(page)
        )
        assert set(providers_offered(page)) == {"proconnect"}
    finally:
        login.browser.close()
    assert socle_users(kc_admin, email) == []

    name = f"placed-{uuid.uuid4().hex[:8]}"
    created = kc_admin.request(
        "POST",
        "/users",
        json={
            "username": name,
            "email": f"{name}@{commune_without_idp.domain}",
            "emailVerified": True,
            "enabled": True,
        },
    )
    user_id = created.headers["Location"].rsplit("/", 1)[-1]
    kc_admin.request(
        "POST",
        f"/organizations/{commune_without_idp.org_id}/members",
        content=user_id,
        headers={"Content-Type": "application/json"},
    )
    login = start_login(keycloak, relying_party[0])
    try:
        page = login.browser.submit(login.first_page, username=f"{name}@{commune_without_idp.domain}")
        assert page.status_code == 200
        assert "password" in fields(page)
        assert input_value(page, "kc-attempted-username") == name
        assert set(providers_offered(page)) == {"proconnect"}
    finally:
        login.browser.close()
