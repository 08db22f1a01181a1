"""The demo accounts of ``make up``: one ready login per role, on the real Keycloak.

Each account logs in through the browser flow with the printed password, and the admin roles
with a one-time password computed from the printed ``otpauth://`` secret (``make up``'s own
test, ``tests/devstack/test_cli.py``, logs them in through the running console and CLI).
"""

from __future__ import annotations

from contextlib import closing

import pytest

from socle_devstack.demo import DEMO_USERS, otpauth_uri, seed_demo
from socle_devstack.keycloak import KeycloakServer
from socle_devstack.stack import Credentials
from tests.support.browser import Browser, authorization_request, log_in, visible_text
from tests.support.keycloak_admin import KeycloakAdmin
from tests.support.totp import secret_of

CALLBACK = "http://localhost:18100/auth/callback"


def test_each_role_gets_a_login_that_works_with_the_printed_secret(
    keycloak: KeycloakServer, kc_admin: KeycloakAdmin, credentials: Credentials
) -> None:
    logins = seed_demo(keycloak, credentials, "development")
    roles = {user.email: user.role for user in DEMO_USERS}
    assert {roles[login.email] for login in logins} == {
        "operator",
        "auditor",
        "epci-admin",
        "commune-admin",
        "commune-agent",
    }
    secret = secret_of(otpauth_uri(credentials["demo_totp_secret"]))
    for login in logins:
        authorize, _ = authorization_request(keycloak.issuer, "socle-console", CALLBACK)
        with closing(Browser()) as browser:
            page = browser.follow(browser.send("GET", authorize))
            done = log_in(
                browser,
                page,
                login.email,
                login.password,
                otp_secret=secret if login.otp else None,
                stop=lambda u: u.startswith(CALLBACK),
            )
        assert done.is_redirect, f"{login.email}: {visible_text(done)[:800]}"
        assert done.headers["location"].startswith(CALLBACK)
        assert "code=" in done.headers["location"]
        (user,) = kc_admin.request("GET", "/users", params={"email": login.email, "exact": "true"}).json()
        realm_roles = {r["name"] for r in kc_admin.request("GET", f"/users/{user['id']}/role-mappings/realm").json()}
        assert roles[login.email] in realm_roles
        assert login.otp is (roles[login.email] != "commune-agent")

    # A second start keeps the accounts (same ids) and their logins.
    ids = {
        u.email: kc_admin.request("GET", "/users", params={"email": u.email, "exact": "true"}).json()[0]["id"]
        for u in DEMO_USERS
    }
    assert seed_demo(keycloak, credentials, "development") == logins
    again = {
        u.email: kc_admin.request("GET", "/users", params={"email": u.email, "exact": "true"}).json()[0]["id"]
        for u in DEMO_USERS
    }
    assert again == ids


def test_demo_accounts_are_refused_outside_development(keycloak: KeycloakServer, credentials: Credentials) -> None:
    with pytest.raises(RuntimeError, match="development only"):
        seed_demo(keycloak, credentials, "production")


def test_the_demo_password_is_drawn_on_its_own(tmp_path) -> None:
    """Not derived from Keycloak's admin password (it once was, from its last characters)."""
    first = Credentials.load_or_create(tmp_path / "a.json")
    second = Credentials.load_or_create(tmp_path / "b.json")
    for creds in (first, second):
        password, admin = creds["demo_password"], creds["keycloak_admin"]
        assert password != admin
        assert not any(admin[i : i + 6] in password for i in range(len(admin) - 5))
        assert len(password) >= 12  # the realm's password policy
        assert any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password)
        assert creds["demo_totp_secret"] not in (admin, password)
    assert first["demo_password"] != second["demo_password"]
    # A stack made before these secrets existed keeps its own and gains them, drawn afresh.
    (tmp_path / "old.json").write_text(first.passwords["keycloak_admin"].join(['{"keycloak_admin": "', '"}']))
    grown = Credentials.load_or_create(tmp_path / "old.json")
    assert grown["keycloak_admin"] == first["keycloak_admin"]
    assert grown["demo_password"] not in (first["demo_password"], second["demo_password"])
