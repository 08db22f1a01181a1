"""End to end in a real headless Chromium against the real Keycloak: log in, see one's commune,
never another's, refresh silently, log out (RP-initiated and back-channel), choose a commune,
and admins without OTP are sent to set it up.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import text

from socle_console.domain.auth.services import SealBroken, open_tokens, seal_tokens
from tests.console.conftest import (
    create_agent,
    create_commune,
    session_cookie,
    sign_in,
    signed_in_session,
    wait,
    wait_for_url,
    with_cookie,
)

pytestmark = pytest.mark.keycloak


def _key(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


async def _session_rows(engine, subject: str) -> list[dict]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT id, data, keycloak_sid FROM console.web_sessions WHERE subject = :s AND kind = 'session'"),
            {"s": subject},
        )
        return [dict(row._mapping) for row in result]


def test_agent_of_commune_a_sees_a_never_b_and_logs_out(browser, console, commune_a, commune_b, kc_admin) -> None:
    agent = create_agent(kc_admin, "commune-agent", commune_a)
    browser.get(f"{console.url}/communes/{commune_a.alias}")
    assert browser.current_url.startswith(f"{kc_admin.server.issuer}/protocol/openid-connect/auth")
    sign_in(browser, agent)
    wait_for_url(browser, f"{console.url}/communes/{commune_a.alias}")

    assert browser.find_element(By.ID, "commune-title").text == f"Commune {commune_a.alias}"
    assert browser.find_element(By.ID, "tenant-id").text == str(commune_a.tenant_id)
    assert browser.find_element(By.ID, "agent-name").text == "Camille Martin"
    assert browser.find_element(By.ID, "agent-email").text == agent.email
    assert browser.find_element(By.ID, "agent-commune").text == commune_a.alias
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#agent-roles li")] == ["commune-agent"]
    # the identity service, called with the agent's own token, reads the same single tenant
    assert browser.find_element(By.ID, "identity-organization").text == commune_a.alias
    assert browser.find_element(By.ID, "identity-tenant").text == str(commune_a.tenant_id)

    cookie = session_cookie(browser, console)
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert len(cookie["value"]) >= 43
    assert not any(c["name"].endswith("_login") for c in browser.get_cookies())  # the login cookie is spent

    with with_cookie(console, cookie["value"]) as client:
        other = client.get(f"/communes/{commune_b.alias}")
        assert other.status_code == 404
        assert other.json()["type"] == "urn:socle:problem:not-found"
        assert commune_b.alias in other.json()["detail"]
        assert str(commune_b.tenant_id) not in other.text
        own = client.get(f"/communes/{commune_a.alias}")
        assert own.status_code == 200
        assert own.headers["cache-control"] == "no-store"

    assert len(kc_admin.request("GET", f"/users/{agent.id}/sessions").json()) == 1
    browser.find_element(By.ID, "logout").click()
    wait_for_url(browser, f"{console.url}/")
    assert browser.find_element(By.ID, "login").text == "Se connecter"
    assert not [c for c in browser.get_cookies() if c["name"] == console.cookie_name]

    with with_cookie(console, cookie["value"]) as client:
        after = client.get(f"/communes/{commune_a.alias}")
        assert after.status_code == 303
        assert after.headers["location"] == f"/auth/login?next=%2Fcommunes%2F{commune_a.alias}"
    assert kc_admin.request("GET", f"/users/{agent.id}/sessions").json() == []


async def test_tokens_refresh_silently_and_a_refused_refresh_ends_the_session(
    browser, console, commune_a, kc_admin, console_owner_engine
) -> None:
    agent = create_agent(kc_admin, "commune-agent", commune_a)
    value = signed_in_session(browser, console, agent, commune_a)
    (before,) = await _session_rows(console_owner_engine, agent.id)
    assert before["id"] == _key(value)  # the table holds the cookie's hash, never the cookie
    assert value not in str(before)
    # The tokens are sealed: nothing in the row is a token, they open only with the cookie.
    tokens_before = open_tokens(value, before["id"], before["data"]["tokens"])
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens_before)
    assert not {"access_token", "refresh_token", "id_token"} & set(before["data"])
    for token in tokens_before.values():
        assert token.split(".")[1] not in str(before)  # not even a JWT's payload
    with pytest.raises(SealBroken):
        open_tokens(value + "x", before["id"], before["data"]["tokens"])

    async def age_access_token(tokens: dict | None = None) -> None:
        changes: dict = {"access_expires_at": 0}
        if tokens:
            changes["tokens"] = seal_tokens(value, _key(value), tokens)
        async with console_owner_engine.begin() as connection:
            await connection.execute(
                text("UPDATE console.web_sessions SET data = (data::jsonb || CAST(:c AS jsonb))::json WHERE id = :id"),
                {"c": json.dumps(changes), "id": _key(value)},
            )

    await age_access_token()
    with with_cookie(console, value) as client:
        page = client.get(f"/communes/{commune_a.alias}")
    assert page.status_code == 200, page.text
    assert str(commune_a.tenant_id) in page.text
    (after,) = await _session_rows(console_owner_engine, agent.id)
    tokens_after = open_tokens(value, after["id"], after["data"]["tokens"])
    assert tokens_after["refresh_token"] != tokens_before["refresh_token"]  # rotated
    assert tokens_after["access_token"] != tokens_before["access_token"]
    assert after["data"]["access_expires_at"] > time.time() + 60

    # the refresh token used once before is refused (rotation): the session ends, off to the login
    await age_access_token(tokens_before)
    with with_cookie(console, value) as client:
        ended = client.get(f"/communes/{commune_a.alias}")
    assert ended.status_code == 303
    assert ended.headers["location"].startswith("/auth/login?next=")
    assert await _session_rows(console_owner_engine, agent.id) == []


async def test_backchannel_logout_ends_the_console_session(
    browser, console, commune_a, kc_admin, console_owner_engine
) -> None:
    agent = create_agent(kc_admin, "commune-agent", commune_a)
    value = signed_in_session(browser, console, agent, commune_a)
    (row,) = await _session_rows(console_owner_engine, agent.id)
    assert row["keycloak_sid"]

    # a token that is not a logout token (here the agent's own ID token) changes nothing
    with with_cookie(console, value) as client:
        id_token = open_tokens(value, row["id"], row["data"]["tokens"])["id_token"]
        refused = client.post("/auth/backchannel-logout", data={"logout_token": id_token})
        assert refused.status_code == 401
        assert refused.json()["detail"] == "un jeton Logout est attendu"
        assert client.get("/account").status_code == 200

    kc_admin.request("POST", f"/users/{agent.id}/logout")  # Keycloak calls the console back, then answers
    assert await _session_rows(console_owner_engine, agent.id) == []
    with with_cookie(console, value) as client:
        assert client.get("/account").status_code == 303
    browser.get(f"{console.url}/account")  # Keycloak's session is gone too: its login form again
    wait(browser).until(lambda d: d.find_elements(By.ID, "username"))


def test_admin_without_otp_is_asked_to_set_it_up(browser, console, commune_a, kc_admin) -> None:
    admin = create_agent(kc_admin, "commune-admin", commune_a)
    browser.get(f"{console.url}/account")
    sign_in(browser, admin)
    wait(browser).until(lambda d: 'data-page-id="login-login-config-totp"' in d.page_source)
    assert browser.current_url.startswith(kc_admin.server.url)
    assert browser.find_elements(By.ID, "totp")
    assert not [c for c in browser.get_cookies() if c["name"] == console.cookie_name]


async def test_agent_of_two_communes_chooses_one(browser, console, commune_a, kc_admin, console_owner_engine) -> None:
    commune_b = create_commune(kc_admin)
    agent = create_agent(kc_admin, "commune-agent", commune_a, commune_b)
    browser.get(f"{console.url}/account")
    sign_in(browser, agent)
    wait_for_url(browser, f"{console.url}/choose-commune")
    choices = {b.text for b in browser.find_elements(By.CSS_SELECTOR, "#communes button")}
    assert choices == {commune_a.alias, commune_b.alias}
    first = session_cookie(browser, console)["value"]

    browser.find_element(By.ID, f"choose-{commune_b.alias}").click()  # no password asked again: prompt=none
    wait_for_url(browser, f"{console.url}/communes/{commune_b.alias}")
    assert browser.find_element(By.ID, "tenant-id").text == str(commune_b.tenant_id)
    assert browser.find_element(By.ID, "identity-tenant").text == str(commune_b.tenant_id)
    (row,) = await _session_rows(console_owner_engine, agent.id)  # the first session was replaced
    assert row["data"]["agent"]["organizations"] == [commune_b.alias]
    with with_cookie(console, first) as client:
        assert client.get("/account").status_code == 303
    assert row["data"]["memberships"] == sorted([commune_a.alias, commune_b.alias])
    with with_cookie(console, session_cookie(browser, console)["value"]) as client:
        assert client.get(f"/communes/{commune_a.alias}").status_code == 404

    browser.get(f"{console.url}/account")  # and back to commune A, still without a password
    browser.find_element(By.ID, "change-commune").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, f"choose-{commune_a.alias}"))
    browser.find_element(By.ID, f"choose-{commune_a.alias}").click()
    wait_for_url(browser, f"{console.url}/communes/{commune_a.alias}")
    assert browser.find_element(By.ID, "tenant-id").text == str(commune_a.tenant_id)
