"""The console's login endpoints at the HTTP level, against the real Keycloak and PostgreSQL:
what is sent to Keycloak, what the browser is given, and every refusal (nothing changed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from socle_console.domain.auth.services import SealBroken, open_tokens, seal_tokens
from tests.console.conftest import with_cookie

pytestmark = pytest.mark.keycloak


def _key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:socle:problem:{slug}"
    assert body["status"] == status
    return dict(body)


@pytest.fixture
def anonymous(console):
    with httpx.Client(base_url=console.url, follow_redirects=False, timeout=20) as client:
        yield client


async def _row(engine, key: str) -> dict | None:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT kind, data, expires_at FROM console.web_sessions WHERE id = :id"), {"id": key}
        )
        row = result.first()
    return dict(row._mapping) if row else None


@pytest.fixture
def synthetic_session(console_owner_engine):
    """A session row as a login leaves it (tokens that are never sent anywhere in these tests)."""

    async def make(*, organizations: list[str], expires_in: int = 3600) -> tuple[str, str]:
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        alias = organizations[0] if len(organizations) == 1 else None
        agent = {
            "subject": str(uuid.uuid4()),
            "username": "agent",
            "name": "Camille Martin",
            "email": "agent@example.fr",
            "roles": ["commune-agent"],
            "organization": alias,
            "tenant_id": str(uuid.uuid4()) if alias else None,
            "organizations": organizations,
        }
        data = {
            "tokens": seal_tokens(cookie, _key(cookie), {"access_token": "unused", "refresh_token": "unused"}),
            "access_expires_at": 4102444800,
            "csrf": csrf,
            "agent": agent,
            "memberships": organizations,
            "id_claims": {},
        }
        async with console_owner_engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO console.web_sessions (id, kind, data, expires_at, subject) "
                    "VALUES (:id, 'session', CAST(:data AS json), :expires, :subject)"
                ),
                {
                    "id": _key(cookie),
                    "data": json.dumps(data),
                    "expires": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in),
                    "subject": agent["subject"],
                },
            )
        return cookie, csrf

    return make


async def test_login_sends_the_browser_to_keycloak_with_pkce_state_and_nonce(
    anonymous, console, keycloak, console_owner_engine
) -> None:
    response = anonymous.get("/auth/login", params={"next": "/communes/commune-35238"})
    assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{keycloak.issuer}/protocol/openid-connect/auth"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == "socle-console"
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"{console.url}/auth/callback"
    assert query["scope"] == "openid organization:*"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 32
    assert "prompt" not in query
    cookie = response.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/auth/callback", "Max-Age=600"):
        assert flag in cookie, cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    pending = await _row(console_owner_engine, _key(value))
    assert pending is not None
    assert pending["kind"] == "login"
    assert pending["data"]["state"] == query["state"]
    assert pending["data"]["next_path"] == "/communes/commune-35238"
    assert value not in json.dumps(pending["data"])


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
async def test_login_never_redirects_elsewhere_afterwards(anonymous, console_owner_engine, target) -> None:
    response = anonymous.get("/auth/login", params={"next": target})
    value = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    assert (await _row(console_owner_engine, _key(value)))["data"]["next_path"] == "/"


def test_login_refuses_a_malformed_commune(anonymous) -> None:
    body = _problem(anonymous.get("/auth/login", params={"organization": "Commune B; drop"}), 400, "login-failed")
    assert "n'est pas une clé de commune" in body["detail"]


async def test_a_callback_must_match_the_login_this_browser_started(anonymous, console, console_owner_engine) -> None:
    body = _problem(anonymous.get("/auth/callback", params={"state": "x" * 43, "code": "c"}), 400, "login-failed")
    assert "inconnue, déjà utilisée ou expirée" in body["detail"]

    started = anonymous.get("/auth/login")
    value = started.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    login_cookie = {"Cookie": f"{console.cookie_name}_login={value}"}
    wrong = anonymous.get("/auth/callback", params={"state": state[::-1], "code": "c"}, headers=login_cookie)
    _problem(wrong, 400, "login-failed")
    assert await _row(console_owner_engine, _key(value)) is None  # used up: a second try finds nothing
    again = anonymous.get("/auth/callback", params={"state": state, "code": "c"}, headers=login_cookie)
    _problem(again, 400, "login-failed")


def test_a_refused_login_says_why(anonymous, console) -> None:
    started = anonymous.get("/auth/login")
    value = started.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    response = anonymous.get(
        "/auth/callback",
        params={"state": state, "error": "access_denied"},
        headers={"Cookie": f"{console.cookie_name}_login={value}"},
    )
    assert "a refusé la connexion : access_denied" in _problem(response, 400, "login-failed")["detail"]


def test_a_forged_code_is_refused(anonymous, console) -> None:
    started = anonymous.get("/auth/login")
    value = started.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    response = anonymous.get(
        "/auth/callback",
        params={"state": state, "code": "forged"},
        headers={"Cookie": f"{console.cookie_name}_login={value}"},
    )
    assert "a refusé le code de connexion" in _problem(response, 400, "login-failed")["detail"]


def test_pages_send_anonymous_browsers_to_the_login(anonymous) -> None:
    for path in ("/account", "/choose-commune", "/communes/commune-35238"):
        response = anonymous.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/auth/login?next=%2F")
    home = anonymous.get("/")
    assert home.status_code == 200
    assert 'href="/auth/login"' in home.text
    assert "État des services" in home.text


async def test_pages_show_the_session_and_refuse_other_communes(anonymous, console, synthetic_session) -> None:
    cookie, _ = await synthetic_session(organizations=["commune-35238"])
    with with_cookie(console, cookie) as client:
        account = client.get("/account")
        assert account.status_code == 200
        assert 'id="agent-commune">commune-35238<' in account.text
        assert account.headers["cache-control"] == "no-store"
        assert account.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in account.headers["content-security-policy"]
        other = client.get("/communes/commune-30189")
        assert "commune-30189" in _problem(other, 404, "not-found")["detail"]


async def test_an_expired_session_is_anonymous(console, synthetic_session, console_owner_engine) -> None:
    cookie, _ = await synthetic_session(organizations=["commune-35238"], expires_in=-1)
    with with_cookie(console, cookie) as client:
        assert client.get("/account").status_code == 303
    assert await _row(console_owner_engine, _key(cookie)) is None


async def test_logout_needs_the_session_form_token_and_origin(console, synthetic_session, console_owner_engine) -> None:
    cookie, csrf = await synthetic_session(organizations=["commune-35238"])
    with with_cookie(console, cookie) as client:
        stale = client.post("/auth/logout", data={"csrf_token": "x" * 43})
        assert "périmé" in _problem(stale, 403, "csrf-refused")["detail"]
        foreign = client.post("/auth/logout", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"})
        assert "evil.example" in _problem(foreign, 403, "csrf-refused")["detail"]
        missing = client.post("/auth/logout", data={})
        assert missing.status_code in (400, 422)
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert client.get("/account").status_code == 200  # nothing changed
        assert await _row(console_owner_engine, _key(cookie)) is not None


def test_logout_without_a_session_goes_home(anonymous) -> None:
    response = anonymous.post("/auth/logout", data={"csrf_token": "anything"})
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_choosing_a_commune_is_limited_to_ones_own(console, synthetic_session, keycloak) -> None:
    cookie, csrf = await synthetic_session(organizations=["commune-35238", "commune-30189"])
    with with_cookie(console, cookie) as client:
        page = client.get("/choose-commune")
        assert page.status_code == 200
        assert 'id="choose-commune-35238"' in page.text
        assert 'id="choose-commune-30189"' in page.text
        stranger = client.post("/choose-commune", data={"csrf_token": csrf, "organization": "commune-75056"})
        _problem(stranger, 404, "not-found")
        forged = client.post("/choose-commune", data={"csrf_token": "x" * 43, "organization": "commune-30189"})
        _problem(forged, 403, "csrf-refused")
        chosen = client.post("/choose-commune", data={"csrf_token": csrf, "organization": "commune-30189"})
        assert chosen.status_code == 303
        query = {k: v[0] for k, v in parse_qs(urlsplit(chosen.headers["location"]).query).items()}
        assert chosen.headers["location"].startswith(f"{keycloak.issuer}/protocol/openid-connect/auth?")
        assert query["scope"] == "openid organization:commune-30189"
        assert query["prompt"] == "none"


def test_backchannel_logout_refuses_what_is_not_a_logout_token(anonymous) -> None:
    garbage = anonymous.post("/auth/backchannel-logout", data={"logout_token": "not.a.jwt"})
    _problem(garbage, 401, "invalid-token")
    missing = anonymous.post("/auth/backchannel-logout", data={})
    assert missing.status_code in (400, 422)
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_sealed_tokens_open_only_with_their_cookie_and_row() -> None:
    cookie, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tokens = {"access_token": "eyJ.a.b", "refresh_token": "eyJ.c.d", "id_token": None}
    sealed = seal_tokens(cookie, _key(cookie), tokens)
    assert sealed.startswith("v1.")
    assert "eyJ" not in sealed
    assert seal_tokens(cookie, _key(cookie), tokens) != sealed  # a fresh nonce each time
    assert open_tokens(cookie, _key(cookie), sealed) == tokens
    with pytest.raises(SealBroken):
        open_tokens(other, _key(cookie), sealed)  # another browser's cookie
    with pytest.raises(SealBroken):
        open_tokens(cookie, _key(other), sealed)  # moved to another row
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealBroken):
        open_tokens(cookie, _key(cookie), tampered)
    for legacy in (None, {"access_token": "eyJ.a.b"}, "eyJ.a.b"):
        with pytest.raises(SealBroken):
            open_tokens(cookie, _key(cookie), legacy)


async def test_a_session_whose_tokens_do_not_open_is_ended(console, synthetic_session, console_owner_engine) -> None:
    cookie, _ = await synthetic_session(organizations=["commune-x"])
    async with console_owner_engine.begin() as connection:
        await connection.execute(
            text("UPDATE console.web_sessions SET data = (data::jsonb || CAST(:c AS jsonb))::json WHERE id = :id"),
            {
                "c": json.dumps({"tokens": seal_tokens("another-cookie", _key(cookie), {"access_token": "x"})}),
                "id": _key(cookie),
            },
        )
    with with_cookie(console, cookie) as client:
        page = client.get("/communes/commune-x")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/auth/login?next=")
    assert await _row(console_owner_engine, _key(cookie)) is None


async def test_clear_tokens_cannot_be_stored_in_a_session(console_owner_engine) -> None:
    """The migration's check: a session row holding a clear token is refused by the database."""
    with pytest.raises(IntegrityError, match="ck_web_sessions_no_clear_tokens"):
        async with console_owner_engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO console.web_sessions (id, kind, data, expires_at) "
                    "VALUES (:id, 'session', CAST(:data AS json), now() + interval '1 hour')"
                ),
                {"id": _key(secrets.token_urlsafe(8)), "data": json.dumps({"refresh_token": "eyJ.c.d"})},
            )
