"""``socle-login``'s session on the real Keycloak: device login, refresh with rotation, end, file rights."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from socle_core import login
from socle_devstack.keycloak import KeycloakServer
from tests.support.browser import approve_device_login
from tests.support.keycloak_admin import KeycloakAdmin, RealmUser, create_user
from tests.support.tokens import unverified_claims


def _logged_in(keycloak: KeycloakServer, user: RealmUser, otp_secret: str | None = None) -> login.Session:
    """A device login approved in the browser by ``user`` (the poll does not wait: the approval comes first)."""
    approved: list[dict[str, Any]] = []

    def approve(device: dict[str, Any]) -> None:
        page = approve_device_login(
            device["verification_uri_complete"], user.username, user.password, otp_secret=otp_secret
        )
        assert "Vous pouvez fermer cette fenêtre" in page.text, page.text[:2000]
        approved.append(device)

    with httpx.Client(timeout=30) as http:
        session = login.device_login(keycloak.issuer, show=approve, http=http, sleep=lambda _: None)
    assert approved
    return session


@pytest.fixture
def store(tmp_path: Path) -> login.TokenStore:
    return login.TokenStore(tmp_path / "runtime" / "socle" / "tokens.json")


def test_an_admin_logs_in_with_otp_and_the_session_is_private(keycloak, kc_admin: KeycloakAdmin, store) -> None:
    secret = secrets.token_hex(10)
    admin = create_user(kc_admin, "commune-admin", otp_secret=secret)
    session = _logged_in(keycloak, admin, secret)
    assert (session.subject, session.username) == (admin.id, admin.username)
    claims = unverified_claims(session.access_token)
    assert claims["azp"] == "socle-cli"
    assert "socle-api" in claims["aud"]
    store.save(session)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert login.access_token(keycloak.issuer, store=store) == session.access_token


def test_an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_saved(
    keycloak, kc_admin: KeycloakAdmin, store
) -> None:
    agent = create_user(kc_admin, "commune-agent")
    session = _logged_in(keycloak, agent)
    session.access_expires_at = 0  # as if the five minutes had passed
    store.save(session)
    token = login.access_token(keycloak.issuer, store=store)
    assert token != session.access_token
    assert unverified_claims(token)["sub"] == agent.id
    renewed = store.load(keycloak.issuer)
    assert renewed is not None
    assert renewed.access_token == token
    assert renewed.refresh_token != session.refresh_token  # the realm rotates refresh tokens
    # The old refresh token is spent: a copy of the file taken before the refresh is useless.
    replay = httpx.post(
        f"{keycloak.issuer}/protocol/openid-connect/token",
        data={"grant_type": "refresh_token", "client_id": "socle-cli", "refresh_token": session.refresh_token},
        timeout=20,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


def test_an_ended_session_asks_for_a_new_login(keycloak, kc_admin: KeycloakAdmin, store) -> None:
    agent = create_user(kc_admin, "commune-agent")
    session = _logged_in(keycloak, agent)
    session.access_expires_at = 0
    store.save(session)
    kc_admin.request("POST", f"/users/{agent.id}/logout")  # e.g. an admin ended the person's sessions
    with pytest.raises(login.LoginError, match=r"a pris fin .*relancez socle-login --issuer "):
        login.access_token(keycloak.issuer, store=store)


def test_no_session_and_a_file_others_can_read_are_refused(keycloak, store) -> None:
    with pytest.raises(
        login.LoginError, match=f"aucune connexion à {keycloak.issuer} sur cette machine : lancez socle-login"
    ):
        login.access_token(keycloak.issuer, store=store)
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps({}))
    store.path.chmod(0o644)
    with pytest.raises(login.LoginError, match="est lisible par d'autres comptes"):
        login.access_token(keycloak.issuer, store=store)


def test_the_file_follows_the_runtime_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(login.TOKEN_FILE_ENV, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert login.token_file() == tmp_path / "socle" / "tokens.json"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert login.token_file() == tmp_path / "home" / ".cache" / "socle" / "tokens.json"
    monkeypatch.setenv(login.TOKEN_FILE_ENV, str(tmp_path / "elsewhere.json"))
    assert login.token_file() == tmp_path / "elsewhere.json"
