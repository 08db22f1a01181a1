"""Fixtures of the identity tests: realm users and browser-like logins on the real Keycloak."""

from __future__ import annotations

import email as email_parser
import html
import re
from contextlib import closing
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import AsyncTestClient

from socle_devstack.keycloak import KeycloakServer
from socle_identity.app import create_app
from socle_identity.config import IdentitySettings
from tests.support.apps import settings_kwargs
from tests.support.browser import (
    Browser,
    authorization_request,
    fields,
    form_action,
    redirect_target,
)
from tests.support.keycloak_admin import ClientCredentials, KeycloakAdmin, RealmUser, create_user

CONSOLE_CALLBACK = "http://localhost:18100/auth/callback"


@dataclass
class LoginOutcome:
    """Where a browser login stopped: a redirect to the client, or a page Keycloak kept showing."""

    redirect: str | None
    page: str
    code_verifier: str = ""

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.redirect or "").query)


def browser_login(
    keycloak: KeycloakServer,
    client_id: str,
    username: str,
    password: str,
    *,
    redirect_uri: str = CONSOLE_CALLBACK,
    pkce: bool = True,
    scope: str = "openid",
) -> LoginOutcome:
    """Drive Keycloak's login pages like a browser without JavaScript would (forms and cookies, see ``Browser``).

    Only the username and password are posted (no hidden fields), at most eight times: a wrong
    password keeps the form on screen, and each post counts against brute-force protection.
    """
    authorize, verifier = authorization_request(keycloak.issuer, client_id, redirect_uri, scope=scope, pkce=pkce)

    def back(url: str) -> bool:
        return url.startswith(redirect_uri)

    with closing(Browser()) as browser:
        response = browser.follow(browser.send("GET", authorize), back)
        for _ in range(8):
            if response.is_redirect:
                return LoginOutcome(redirect_target(response), "", verifier)
            action, names = form_action(response), fields(response)
            if action is None or not ({"username", "password"} & names.keys()):
                return LoginOutcome(None, response.text)
            data = {k: v for k, v in (("username", username), ("password", password)) if k in names}
            response = browser.follow(browser.send("POST", action, data=data), back)
    return LoginOutcome(None, response.text)


@pytest.fixture
def identity_settings(clean_socle_env, database, keycloak, credentials) -> IdentitySettings:
    """The identity service on the test servers, managing the realm; its background jobs off (their tests run them)."""
    return IdentitySettings(
        **settings_kwargs(
            "identity",
            database,
            keycloak,
            keycloak_client_secret=credentials["platform_client"],
            placement_sync_interval_seconds=0,
            audit_feed_interval_seconds=0,
            invitation_sync_interval_seconds=0,
        )
    )


@pytest.fixture
async def identity(identity_settings: IdentitySettings):
    async with AsyncTestClient(create_app(identity_settings)) as client:
        yield client


@pytest.fixture
def realm_user(kc_admin: KeycloakAdmin):
    def make(*roles: str) -> RealmUser:
        return create_user(kc_admin, *roles)

    return make


@pytest.fixture
async def platform_keycloak(keycloak: KeycloakServer, credentials):
    """The identity service's own admin client, as the confidential ``socle-platform`` client."""
    from socle_identity.keycloak import KeycloakAdminClient

    async with KeycloakAdminClient(keycloak.url, "socle", "socle-platform", credentials["platform_client"]) as client:
        yield client


def console_tokens(keycloak: KeycloakServer, console_secret: str, outcome: LoginOutcome) -> dict[str, object]:
    """Exchange the code of a console login for tokens, as the console's back end does."""
    assert outcome.redirect is not None, "the login did not complete"
    response = httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "authorization_code",
            "code": outcome.query["code"][0],
            "redirect_uri": CONSOLE_CALLBACK,
            "client_id": "socle-console",
            "client_secret": console_secret,
            "code_verifier": outcome.code_verifier,
        },
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


class _SmtpSink:
    """A tiny SMTP server in a thread that keeps every message (Keycloak sends invitations by email)."""

    def __init__(self) -> None:
        import asyncore
        import smtpd
        import threading

        from socle_devstack.processes import free_port

        self.port = free_port()
        self.messages: list[tuple[str, list[str], bytes]] = []
        sink = self

        class Server(smtpd.SMTPServer):
            def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):  # type: ignore[no-untyped-def]
                sink.messages.append((mailfrom, list(rcpttos), data if isinstance(data, bytes) else data.encode()))

        self._server = Server(("127.0.0.1", self.port), None, decode_data=False)
        self._loop = asyncore.loop
        self._thread = threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.2}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def smtp_sink(kc_admin: KeycloakAdmin):
    """The realm sends its emails to a local sink for the session."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sink = _SmtpSink()
    realm = kc_admin.request("GET", "").json()
    previous = realm.get("smtpServer") or {}
    kc_admin.request(
        "PUT",
        "",
        json={
            "smtpServer": {
                "host": "127.0.0.1",
                "port": str(sink.port),
                "from": "socle@example.fr",
                "fromDisplayName": "Socle",
            }
        },
    )
    yield sink
    kc_admin.request("PUT", "", json={"smtpServer": previous})
    sink.close()


_ACTION_LINK = re.compile(r"https?://[^\s\"'<>]+/login-actions/action-token\?[^\s\"'<>]+")
#: A password the realm's policy accepts (length, cases, digits; neither username nor address).
NEW_PASSWORD = "Nouveau-Mot-2026-de-passe"


def mails_to(sink: _SmtpSink, address: str) -> list[str]:
    """The text of every message the sink got for this address, oldest first."""
    texts = []
    for _, recipients, data in sink.messages:
        if address.lower() not in (r.lower() for r in recipients):
            continue
        parts = email_parser.message_from_bytes(data).walk()
        texts.append(
            "".join(part.get_payload(decode=True).decode() for part in parts if part.get_content_maintype() == "text")
        )
    return texts


def action_link(text: str) -> str:
    """The Keycloak action link (set a password, join an organization) an e-mail carries."""
    found = _ACTION_LINK.search(text)
    assert found is not None, f"no action link in: {text[:800]}"
    return html.unescape(found.group(0))


def _proceed(browser: Browser, page: httpx.Response) -> httpx.Response:
    """Keycloak's "click here to proceed" info page, clicked through (a no-JS browser follows the link)."""
    for _ in range(3):
        if page.is_redirect:
            page = browser.follow(page)
            continue
        link = _ACTION_LINK.search(page.text)
        if link is None or form_action(page) is not None:
            return page
        page = browser.follow(browser.send("GET", html.unescape(link.group(0))))
    return page


def use_account_link(link: str, password: str = NEW_PASSWORD) -> httpx.Response:
    """Open an invitation's set-a-password link like its recipient would, and set ``password`` if asked.

    Returns the last page: Keycloak's confirmation, or whatever it showed instead of the form.
    """
    with closing(Browser()) as browser:
        page = _proceed(browser, browser.follow(browser.send("GET", link)))
        if "password-new" not in fields(page):
            return page
        page = browser.follow(browser.submit(page, **{"password-new": password, "password-confirm": password}))
        return _proceed(browser, page)


def use_organization_link(link: str) -> httpx.Response:
    """Open Keycloak's organization invitation and confirm it, like its recipient would."""
    with closing(Browser()) as browser:
        return _proceed(browser, browser.follow(browser.send("GET", link)))


def password_grant(keycloak: KeycloakServer, client: ClientCredentials, username: str, password: str) -> httpx.Response:
    """A password login through a client allowed the direct grant (no browser)."""
    return httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": client.client_id,
            "client_secret": client.secret,
            "username": username,
            "password": password,
        },
        timeout=20,
    )
