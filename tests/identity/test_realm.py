"""The running realm keeps its hardening: read back through the admin API, and exercised.

If someone loosens a setting in ``infra/keycloak/socle-realm.json`` (or through the admin
console of a running realm), these tests fail with the setting that drifted.
"""

from __future__ import annotations

import httpx
import pytest

from tests.identity.conftest import CONSOLE_CALLBACK, browser_login

ADMIN_ROLES = ("operator", "epci-admin", "commune-admin", "auditor")
NON_ADMIN_ROLES = ("commune-agent", "partner", "device")
PASSWORD_POLICY = (
    "length(12) and upperCase(1) and lowerCase(1) and digits(1) and notUsername and notEmail and passwordHistory(5)"
)


@pytest.fixture(scope="module")
def realm(kc_admin) -> dict:
    return kc_admin.request("GET", "").json()


def test_brute_force_detection_is_on(realm) -> None:
    assert realm["bruteForceProtected"] is True
    assert realm["failureFactor"] == 5
    assert realm["permanentLockout"] is False
    assert realm["waitIncrementSeconds"] == 60
    assert realm["maxFailureWaitSeconds"] == 900
    assert realm["minimumQuickLoginWaitSeconds"] == 60


def test_tokens_are_short_lived_and_refresh_tokens_rotate(realm) -> None:
    assert realm["accessTokenLifespan"] <= 300
    assert realm["accessTokenLifespanForImplicitFlow"] <= 300
    assert realm["revokeRefreshToken"] is True
    assert realm["refreshTokenMaxReuse"] == 0
    assert realm["ssoSessionIdleTimeout"] == 1800
    assert realm["ssoSessionMaxLifespan"] == 36000


def test_password_policy(realm) -> None:
    assert realm["passwordPolicy"] == PASSWORD_POLICY


def test_transport_and_registration(realm) -> None:
    assert realm["sslRequired"] == "external"
    assert realm["registrationAllowed"] is False
    assert realm["organizationsEnabled"] is True


def test_events_and_admin_events_are_stored(kc_admin) -> None:
    config = kc_admin.request("GET", "/events/config").json()
    assert config["eventsEnabled"] is True
    assert config["eventsExpiration"] == 7776000
    assert config["adminEventsEnabled"] is True
    assert config["adminEventsDetailsEnabled"] is True


def test_public_clients_must_use_pkce_s256(kc_admin) -> None:
    policies = kc_admin.request("GET", "/client-policies/policies").json()["policies"]
    policy = next(p for p in policies if p["name"] == "socle-public-clients-pkce")
    assert policy["enabled"] is True
    assert policy["conditions"] == [{"condition": "client-access-type", "configuration": {"type": ["public"]}}]
    profiles = kc_admin.request("GET", "/client-policies/profiles").json()["profiles"]
    profile = next(p for p in profiles if p["name"] in policy["profiles"])
    assert {"executor": "pkce-enforcer", "configuration": {"auto-configure": "true"}} in profile["executors"]


def test_console_client_uses_pkce_s256(kc_admin) -> None:
    console = kc_admin.request("GET", "/clients", params={"clientId": "socle-console"}).json()[0]
    assert console["attributes"]["pkce.code.challenge.method"] == "S256"
    assert console["implicitFlowEnabled"] is False
    assert console["directAccessGrantsEnabled"] is False


def _password_grant(keycloak, client_id: str, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": client_id, "username": username, "password": password},
        timeout=20,
    )


def test_the_realms_admin_cli_has_no_password_grant(kc_admin, keycloak, realm_user) -> None:
    """Keycloak creates ``admin-cli`` in every realm with direct grants on: a password alone, no OTP, gave a token."""
    (admin_cli,) = kc_admin.request("GET", "/clients", params={"clientId": "admin-cli"}).json()
    assert admin_cli["directAccessGrantsEnabled"] is False
    assert admin_cli["publicClient"] is True
    admin = realm_user("epci-admin")
    refused = _password_grant(keycloak, "admin-cli", admin.username, admin.password)
    assert refused.status_code in (400, 401), refused.text
    assert refused.json()["error"] == "unauthorized_client"
    assert "access_token" not in refused.json()


def test_the_command_line_client_only_has_the_device_grant(kc_admin, keycloak, realm_user) -> None:
    (cli,) = kc_admin.request("GET", "/clients", params={"clientId": "socle-cli"}).json()
    assert cli["publicClient"] is True
    assert (cli["standardFlowEnabled"], cli["implicitFlowEnabled"], cli["directAccessGrantsEnabled"]) == (
        False,
        False,
        False,
    )
    assert cli["serviceAccountsEnabled"] is False
    assert cli["attributes"]["oauth2.device.authorization.grant.enabled"] == "true"
    assert cli["consentRequired"] is False  # Keycloak still shows its consent page for a device login
    agent = realm_user("commune-agent")
    assert _password_grant(keycloak, "socle-cli", agent.username, agent.password).json()["error"] == (
        "unauthorized_client"
    )
    started = httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/auth/device", data={"client_id": "socle-cli"}, timeout=20
    )
    assert started.status_code == 200, started.text
    assert started.json()["verification_uri"] == f"{keycloak.issuer}/device"
    # Tokens of a person logged in through it are for the services (audience socle-api).
    audience = [m for m in cli["protocolMappers"] if m["protocolMapper"] == "oidc-audience-mapper"]
    assert [m["config"]["included.client.audience"] for m in audience] == ["socle-api"]


def test_a_public_client_without_pkce_is_refused(kc_admin, keycloak, realm_user) -> None:
    redirect = "http://localhost:18199/callback"
    client_id = f"public-{realm_user().username}"
    kc_admin.request(
        "POST",
        "/clients",
        json={
            "clientId": client_id,
            "publicClient": True,
            "standardFlowEnabled": True,
            "redirectUris": [redirect],
        },
    )
    client = kc_admin.request("GET", "/clients", params={"clientId": client_id}).json()[0]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"  # auto-configured by the policy
    response = httpx.get(
        f"{keycloak.issuer}/protocol/openid-connect/auth",
        params={
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect,
            "scope": "openid",
            "state": "s" * 32,
        },
        follow_redirects=False,
        timeout=20,
    )
    assert response.is_redirect, response.text
    assert "error=invalid_request" in response.headers["location"]


def test_browser_flow_asks_admin_roles_for_otp(kc_admin, realm) -> None:
    assert realm["browserFlow"] == "socle browser"
    executions = kc_admin.request("GET", "/authentication/flows/socle browser/executions").json()
    by_provider = {e.get("providerId"): e for e in executions}
    condition = by_provider["conditional-user-role"]
    otp = by_provider["auth-otp-form"]
    assert condition["requirement"] == "REQUIRED"
    assert otp["requirement"] == "REQUIRED"
    assert condition["level"] == otp["level"]  # both in the same conditional sub-flow
    config = kc_admin.request("GET", f"/authentication/config/{condition['authenticationConfig']}").json()
    assert config["config"] == {"condUserRole": "otp-required", "negate": "false"}
    subflow = next(e for e in executions if e.get("displayName") == "socle admin otp")
    assert subflow["requirement"] == "CONDITIONAL"


@pytest.mark.parametrize("role", ADMIN_ROLES)
def test_every_admin_role_carries_otp_required(kc_admin, role) -> None:
    composites = {r["name"] for r in kc_admin.request("GET", f"/roles/{role}/composites").json()}
    assert "otp-required" in composites


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_non_admin_roles_do_not_need_otp(kc_admin, role) -> None:
    assert kc_admin.request("GET", f"/roles/{role}").json()["composite"] is False


def test_an_admin_without_otp_is_asked_to_set_it_up(keycloak, realm_user) -> None:
    admin = realm_user("commune-admin")
    outcome = browser_login(keycloak, "socle-console", admin.username, admin.password)
    assert outcome.redirect is None
    assert 'data-page-id="login-login-config-totp"' in outcome.page, outcome.page
    assert 'name="totp"' in outcome.page


def test_an_agent_logs_in_with_a_password_only(keycloak, realm_user) -> None:
    agent = realm_user("commune-agent")
    outcome = browser_login(keycloak, "socle-console", agent.username, agent.password)
    assert outcome.redirect is not None, outcome.page[:2000]
    assert outcome.redirect.startswith(CONSOLE_CALLBACK)
    assert outcome.query.get("code")


def _lockout_refusals(kc_admin, user_id: str) -> int:
    """Logins Keycloak refused because brute-force detection holds the account (not a bad password)."""
    events = kc_admin.request("GET", "/events", params={"user": user_id, "type": "LOGIN_ERROR", "max": 1000}).json()
    return sum(1 for event in events if event.get("error") == "user_temporarily_disabled")


def test_repeated_wrong_passwords_lock_the_account(kc_admin, keycloak, realm_user) -> None:
    agent = realm_user("commune-agent")
    for _ in range(5):
        assert browser_login(keycloak, "socle-console", agent.username, "wrong-password-1A").redirect is None
    status = kc_admin.request("GET", f"/attack-detection/brute-force/users/{agent.id}").json()
    assert status["disabled"] is True
    assert status["numFailures"] >= 1  # quick successive failures lock before the fifth one
    refused_before = _lockout_refusals(kc_admin, agent.id)
    outcome = browser_login(keycloak, "socle-console", agent.username, agent.password)
    assert outcome.redirect is None, "the right password logged in while the account is locked"
    assert _lockout_refusals(kc_admin, agent.id) > refused_before, "the right password was refused, not for the lock"
    # Lifting the lock lets the same password in: it was the lock that refused it.
    kc_admin.request("DELETE", f"/attack-detection/brute-force/users/{agent.id}")
    assert kc_admin.request("GET", f"/attack-detection/brute-force/users/{agent.id}").json()["disabled"] is False
    assert browser_login(keycloak, "socle-console", agent.username, agent.password).redirect is not None


def test_organization_scope_puts_the_tenant_id_in_tokens(kc_admin) -> None:
    scope = next(s for s in kc_admin.request("GET", "/client-scopes").json() if s["name"] == "organization")
    (mapper,) = scope["protocolMappers"]
    assert mapper["protocolMapper"] == "oidc-organization-membership-mapper"
    config = mapper["config"]
    assert config["claim.name"] == "organization"
    assert config["jsonType.label"] == "JSON"
    assert config["addOrganizationAttributes"] == "true"
    assert config["access.token.claim"] == "true"
    console = kc_admin.request("GET", "/clients", params={"clientId": "socle-console"}).json()[0]
    assert "organization" in console["optionalClientScopes"]
    # one source of the claim only: a second mapper would make Keycloak merge two shapes into a list
    assert not [m for m in console.get("protocolMappers", []) if m["config"].get("claim.name") == "organization"]
