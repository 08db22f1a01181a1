"""``socle-login``: a person's login on the command line, and the session the commands reuse.

The realm's public client ``socle-cli`` has only the OAuth 2.0 Device Authorization Grant
(RFC 8628): the command prints a verification address and a code, the person opens it in any
browser and logs in there through the realm's browser flow (password, one-time password for
admin roles, ProConnect), and the command polls until Keycloak hands out the tokens. Direct
grants stay off: no password ever passes through a terminal.

The tokens are kept in one file per user, readable by that user only (``0600`` in a ``0700``
folder): ``$SOCLE_TOKEN_FILE``, else ``$XDG_RUNTIME_DIR/socle/tokens.json`` (a folder the
session's end removes), else ``~/.cache/socle/tokens.json``. One entry per realm issuer. The
commands that act as a person (``socle-tenants``) read it, refresh the access token when it
has expired (the realm rotates refresh tokens, so each refresh is written back) and ask for a
new login once the session has ended.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from socle_core.local_stack import LocalStackError, fill_from_local_stack

CLIENT_ID = "socle-cli"
DEFAULT_ISSUER = "http://127.0.0.1:8180/realms/socle"
ISSUER_ENV = "SOCLE_LOGIN_ISSUER"
TOKEN_FILE_ENV = "SOCLE_TOKEN_FILE"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: An access token this close to its expiry is refreshed before use.
EXPIRY_MARGIN_SECONDS = 20


class LoginError(Exception):
    """No usable session: the message says what to run."""


def token_file() -> Path:
    """Where this user's sessions are kept (see the module's docstring)."""
    explicit = os.environ.get(TOKEN_FILE_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".cache"
    return base / "socle" / "tokens.json"


@dataclass
class Session:
    """One person's tokens for one realm, with when each expires (seconds since the epoch)."""

    issuer: str
    access_token: str
    access_expires_at: float
    refresh_token: str
    refresh_expires_at: float
    subject: str
    username: str

    @classmethod
    def from_token_response(cls, issuer: str, body: dict[str, Any], now: float | None = None) -> Session:
        now = time.time() if now is None else now
        claims = _claims(str(body["access_token"]))
        refresh_lifespan = int(body.get("refresh_expires_in") or 0)
        return cls(
            issuer=issuer,
            access_token=str(body["access_token"]),
            access_expires_at=now + int(body.get("expires_in", 60)),
            refresh_token=str(body.get("refresh_token", "")),
            # 0 means "as long as the SSO session" for Keycloak: the refresh itself says when it ended.
            refresh_expires_at=now + refresh_lifespan if refresh_lifespan else float("inf"),
            subject=str(claims.get("sub", "")),
            username=str(claims.get("preferred_username", "")),
        )


def _claims(token: str) -> dict[str, Any]:
    """The access token's payload, read only to name the person (the services verify it)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class TokenStore:
    """The sessions file: created ``0600``, replaced atomically, refused when others may read it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or token_file()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise LoginError(
                f"{self.path} est lisible par d'autres comptes (mode {mode:o}) : supprimez-le et relancez socle-login"
            )
        return dict(json.loads(self.path.read_text(encoding="utf-8")))

    def _write(self, sessions: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)  # created 0600
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(sessions, file, indent=2)
        os.replace(partial, self.path)

    def load(self, issuer: str) -> Session | None:
        entry = self._read().get(issuer.rstrip("/"))
        return Session(**entry) if entry else None

    def save(self, session: Session) -> None:
        sessions = self._read()
        sessions[session.issuer.rstrip("/")] = asdict(session)
        self._write(sessions)

    def remove(self, issuer: str) -> Session | None:
        sessions = self._read()
        entry = sessions.pop(issuer.rstrip("/"), None)
        self._write(sessions)
        return Session(**entry) if entry else None


def _endpoint(issuer: str, name: str) -> str:
    return f"{issuer.rstrip('/')}/protocol/openid-connect/{name}"


def device_login(
    issuer: str,
    *,
    scope: str = "openid organization",
    show: Callable[[dict[str, Any]], None],
    http: httpx.Client,
    sleep: Callable[[float], None] = time.sleep,
) -> Session:
    """Run the device authorization grant: ``show`` gets Keycloak's answer (address, code), then poll."""
    started = http.post(_endpoint(issuer, "auth/device"), data={"client_id": CLIENT_ID, "scope": scope})
    if started.status_code != 200:
        raise LoginError(
            f"Keycloak a refusé de commencer une connexion pour {CLIENT_ID!r} ({started.status_code}) : {started.text}"
        )
    device = started.json()
    show(device)
    interval = int(device.get("interval", 5))
    deadline = time.monotonic() + int(device.get("expires_in", 600))
    while time.monotonic() < deadline:
        sleep(interval)
        answer = http.post(
            _endpoint(issuer, "token"),
            data={"grant_type": DEVICE_GRANT, "client_id": CLIENT_ID, "device_code": device["device_code"]},
        )
        if answer.status_code == 200:
            return Session.from_token_response(issuer.rstrip("/"), answer.json())
        error = (
            answer.json().get("error") if answer.headers.get("content-type", "").startswith("application/json") else ""
        )
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5  # RFC 8628 §3.5
            continue
        if error == "access_denied":
            raise LoginError("la connexion a été refusée dans le navigateur")
        if error == "expired_token":
            break
        raise LoginError(f"Keycloak a refusé la connexion ({answer.status_code}) : {answer.text}")
    raise LoginError("le code a expiré avant que la connexion ne soit faite : relancez socle-login")


def access_token(issuer: str, *, store: TokenStore | None = None, http: httpx.Client | None = None) -> str:
    """A valid access token of the stored session for ``issuer``, refreshed (and saved) when it expired."""
    store = store or TokenStore()
    session = store.load(issuer)
    if session is None:
        raise LoginError(f"aucune connexion à {issuer} sur cette machine : lancez socle-login --issuer {issuer}")
    now = time.time()
    if now < session.access_expires_at - EXPIRY_MARGIN_SECONDS:
        return session.access_token
    if not session.refresh_token or now >= session.refresh_expires_at:
        raise LoginError(f"la connexion de {session.username} a pris fin : relancez socle-login --issuer {issuer}")
    client = http or httpx.Client(timeout=30)
    try:
        answer = client.post(
            _endpoint(issuer, "token"),
            data={"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": session.refresh_token},
        )
    except httpx.HTTPError as exc:
        raise LoginError(f"Keycloak est injoignable à {issuer} pour renouveler la connexion : {exc!r}") from exc
    finally:
        if http is None:
            client.close()
    if answer.status_code != 200:
        reason = answer.json().get("error_description", answer.status_code)
        raise LoginError(
            f"la connexion de {session.username} a pris fin ({reason}) : relancez socle-login --issuer {issuer}"
        )
    renewed = Session.from_token_response(session.issuer, answer.json())
    store.save(renewed)
    return renewed.access_token


def _show(device: dict[str, Any]) -> None:
    print("Pour vous connecter, ouvrez dans un navigateur :", flush=True)
    print(f"  {device.get('verification_uri_complete') or device['verification_uri']}", flush=True)
    print(f"et vérifiez que la page affiche le code {device['user_code']}.", flush=True)
    print("En attente de la connexion...", flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        fill_from_local_stack([ISSUER_ENV])  # the realm of the running `make up`, on whatever port it moved to
    except LocalStackError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="socle-login", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["login", "status", "logout"], default="login")
    parser.add_argument(
        "--issuer",
        default=os.environ.get(ISSUER_ENV, DEFAULT_ISSUER),
        help=f"issuer URL of the Keycloak realm (${ISSUER_ENV}, default {DEFAULT_ISSUER}: the realm of make up)",
    )
    parser.add_argument(
        "--organization", help="the organization (tenant alias) the tokens name, for a member of several"
    )
    args = parser.parse_args(argv)
    issuer = args.issuer.rstrip("/")
    store = TokenStore()
    try:
        if args.command == "status":
            session = store.load(issuer)
            if session is None:
                print(f"aucune session pour {issuer} ({store.path})")
                return 1
            print(f"session de {session.username} ({session.subject}) pour {issuer}, dans {store.path}")
            return 0
        if args.command == "logout":
            session = store.remove(issuer)
            if session is not None:
                with httpx.Client(timeout=30) as http:
                    http.post(
                        _endpoint(issuer, "revoke"),
                        data={
                            "client_id": CLIENT_ID,
                            "token": session.refresh_token,
                            "token_type_hint": "refresh_token",
                        },
                    )
            print(f"session pour {issuer} fermée")
            return 0
        scope = "openid " + (f"organization:{args.organization}" if args.organization else "organization")
        with httpx.Client(timeout=30) as http:
            session = device_login(issuer, scope=scope, show=_show, http=http)
        store.save(session)
    except (LoginError, httpx.HTTPError) as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return 1
    print(f"Session de {session.username} enregistrée dans {store.path} (lisible par votre seul compte).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
