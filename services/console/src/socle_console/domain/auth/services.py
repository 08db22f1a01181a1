"""Server-side web sessions: logins in progress and agents' sessions, in ``console.web_sessions``.

The browser only ever holds a random value; the table is keyed by its SHA-256, so a copy of
the table gives no usable cookie. Tokens stay here, never in the browser, and sealed: they are
encrypted (AES-256-GCM) with a key derived from the cookie value, which the table never holds,
so a copy of the table, a backup or a database administrator gets no usable token either.
Services only ``flush()``: the request's transaction commits in one place (socle_core.db).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from socle_console.config import ConsoleSettings
from socle_console.db.models import WebSession
from socle_console.domain.auth.oidc import OidcClient, TokenRequestRefused, TokenSet, random_token
from socle_core.auth import Principal, TokenVerifier, principal_from_claims

log = structlog.get_logger("socle.console.sessions")

#: The platform's roles, as the console shows them (Keycloak adds technical ones we leave out).
PLATFORM_ROLES = ("operator", "epci-admin", "commune-admin", "commune-agent", "auditor", "partner", "device")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cookie_key(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


#: The version of the sealed-token format, first in every sealed value.
_SEAL_VERSION = "v1"


def _sealing_key(cookie_value: str) -> bytes:
    """The tokens' key: HKDF of the cookie value (a different derivation from the row id's SHA-256)."""
    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"socle-console session tokens v1")
    return hkdf.derive(cookie_value.encode())


def seal_tokens(cookie_value: str, row_id: str, tokens: dict[str, Any]) -> str:
    """Encrypt a session's tokens; the row id is bound in, so a sealed value moved to another row fails."""
    nonce = os.urandom(12)
    sealed = AESGCM(_sealing_key(cookie_value)).encrypt(nonce, json.dumps(tokens).encode(), row_id.encode())
    return f"{_SEAL_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


class SealBroken(Exception):
    """The sealed tokens cannot be opened with this cookie (another cookie, another row, altered, old format)."""


def open_tokens(cookie_value: str, row_id: str, sealed: object) -> dict[str, Any]:
    if not isinstance(sealed, str) or not sealed.startswith(f"{_SEAL_VERSION}."):
        raise SealBroken("no sealed tokens in this session")
    try:
        raw = base64.urlsafe_b64decode(sealed.split(".", 1)[1])
        plain = AESGCM(_sealing_key(cookie_value)).decrypt(raw[:12], raw[12:], row_id.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealBroken("the session's tokens do not open with this cookie") from exc
    return dict(json.loads(plain))


@dataclass
class LiveSession:
    """A session row as its browser presented it: with the cookie value, its tokens can be opened."""

    row: WebSession
    cookie_value: str

    def tokens(self) -> dict[str, Any]:
        return open_tokens(self.cookie_value, self.row.id, self.row.data.get("tokens"))

    def keep_tokens(self, tokens: dict[str, Any], **data: Any) -> None:
        """Seal ``tokens`` into the row (a new dict, so the JSON column sees the change)."""
        self.row.data = {**self.row.data, **data, "tokens": seal_tokens(self.cookie_value, self.row.id, tokens)}


@dataclass(frozen=True)
class Agent:
    """Who is logged in, as the pages show it; derived from the verified tokens."""

    subject: str
    username: str | None
    name: str | None
    email: str | None
    roles: list[str]
    organization: str | None
    tenant_id: str | None
    organizations: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, principal: Principal, id_claims: dict[str, Any]) -> Agent:
        name = id_claims.get("name") or " ".join(
            p for p in (id_claims.get("given_name"), id_claims.get("family_name")) if p
        )
        return cls(
            subject=principal.subject,
            username=principal.username,
            name=name or None,
            email=principal.email or id_claims.get("email"),
            roles=[r for r in PLATFORM_ROLES if r in principal.roles],
            organization=principal.organization if principal.tenant else None,
            tenant_id=str(principal.tenant) if principal.tenant else None,
            organizations=list(principal.organizations),
        )


@dataclass(frozen=True)
class PendingLogin:
    state: str
    nonce: str
    code_verifier: str
    scope: str
    next_path: str
    silent: bool
    replaces: str | None  # key of the session a commune change replaces
    memberships: list[str] = field(default_factory=list)  # the communes known before a commune change


async def start_login(
    db: AsyncSession,
    settings: ConsoleSettings,
    *,
    scope: str,
    next_path: str,
    silent: bool = False,
    replaces: str | None = None,
    memberships: list[str] | None = None,
) -> tuple[str, PendingLogin]:
    """Remember a login sent to Keycloak; returns the login cookie's value and what to send."""
    await db.execute(delete(WebSession).where(WebSession.expires_at < _now()))
    pending = PendingLogin(
        random_token(), random_token(), random_token(48), scope, next_path, silent, replaces, list(memberships or [])
    )
    cookie = random_token()
    db.add(
        WebSession(
            id=cookie_key(cookie),
            kind="login",
            data=asdict(pending),
            expires_at=_now() + dt.timedelta(seconds=settings.login_timeout_seconds),
        )
    )
    await db.flush()
    return cookie, pending


async def take_login(db: AsyncSession, cookie: str | None) -> PendingLogin | None:
    """The login this browser started, used once: a replayed callback finds nothing."""
    if not cookie:
        return None
    row = await db.get(WebSession, cookie_key(cookie), with_for_update=True)
    if row is None or row.kind != "login":
        return None
    await db.delete(row)
    await db.flush()
    if row.expires_at < _now():
        return None
    return PendingLogin(**row.data)


def _token_data(tokens: TokenSet, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    previous = previous or {}
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token or previous.get("refresh_token"),
        "id_token": tokens.id_token or previous.get("id_token"),
    }


async def open_session(
    db: AsyncSession,
    settings: ConsoleSettings,
    tokens: TokenSet,
    id_claims: dict[str, Any],
    principal: Principal,
    memberships: list[str],
) -> tuple[str, WebSession]:
    """A new session (new id: a login never reuses a cookie value known before it).

    ``memberships`` are every commune the agent may switch to: a token for one commune names
    only that one, so they come from the first login (scope ``organization:*``).
    """
    cookie = random_token()
    key = cookie_key(cookie)
    row = WebSession(
        id=key,
        kind="session",
        data={
            "tokens": seal_tokens(cookie, key, _token_data(tokens)),
            # When to refresh is no secret: checked on every page without opening the tokens.
            "access_expires_at": tokens.expires_at,
            "csrf": random_token(),
            "agent": asdict(Agent.of(principal, id_claims)),
            "memberships": sorted(set(memberships) | set(principal.organizations)),
            "id_claims": {k: id_claims.get(k) for k in ("name", "given_name", "family_name", "email")},
        },
        expires_at=_now() + dt.timedelta(seconds=settings.session_lifetime_seconds),
        subject=principal.subject,
        keycloak_sid=id_claims.get("sid"),
    )
    db.add(row)
    await db.flush()
    log.info("console_login", subject=principal.subject, organization=row.data["agent"]["organization"])
    return cookie, row


async def load_session(db: AsyncSession, cookie: str | None) -> LiveSession | None:
    """The browser's session, or None (unknown, expired, or tokens that do not open: ended)."""
    if not cookie:
        return None
    row = await db.get(WebSession, cookie_key(cookie))
    if row is None or row.kind != "session":
        return None
    if row.expires_at < _now():
        await db.delete(row)
        await db.flush()
        return None
    live = LiveSession(row, cookie)
    try:
        live.tokens()
    except SealBroken as exc:
        log.warning("console_session_unreadable", subject=row.subject, reason=str(exc))
        await db.delete(row)
        await db.flush()
        return None
    return live


async def end_session(db: AsyncSession, row: WebSession) -> None:
    await db.execute(delete(WebSession).where(WebSession.id == row.id))
    await db.flush()


async def end_sessions_of(db: AsyncSession, *, sid: str | None, subject: str | None) -> int:
    """Back-channel logout: every console session of that Keycloak session (or of that user)."""
    condition = WebSession.keycloak_sid == sid if sid else WebSession.subject == subject
    result = await db.execute(delete(WebSession).where(WebSession.kind == "session", condition))
    await db.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def discard(db: AsyncSession, *keys: str | None) -> None:
    wanted = [k for k in keys if k]
    if wanted:
        await db.execute(delete(WebSession).where(or_(*(WebSession.id == k for k in wanted))))
        await db.flush()


class SessionEnded(Exception):
    """The session could not be kept alive (refresh refused): the agent must log in again."""


async def fresh_access_token(
    db: AsyncSession,
    settings: ConsoleSettings,
    oidc: OidcClient,
    access_verifier: TokenVerifier,
    live: LiveSession,
) -> str:
    """The agent's access token, refreshed first when it is about to expire.

    The row is locked while refreshing: with rotation on, two concurrent refreshes with the
    same refresh token would make Keycloak revoke the session.
    """
    row = live.row
    if row.data["access_expires_at"] - time.time() > settings.token_refresh_margin_seconds:
        return str(live.tokens()["access_token"])
    await db.refresh(row, with_for_update=True)
    if row.data["access_expires_at"] - time.time() > settings.token_refresh_margin_seconds:
        return str(live.tokens()["access_token"])  # another request refreshed it meanwhile
    current = live.tokens()
    try:
        if not current.get("refresh_token"):
            raise TokenRequestRefused("no refresh token")
        tokens = await oidc.refresh(str(current["refresh_token"]))
        principal = principal_from_claims(await access_verifier.verify(tokens.access_token))
    except TokenRequestRefused as exc:
        log.info("console_refresh_refused", subject=row.subject, reason=str(exc)[:120])
        await end_session(db, row)
        raise SessionEnded from exc
    live.keep_tokens(
        _token_data(tokens, current),
        access_expires_at=tokens.expires_at,
        agent=asdict(Agent.of(principal, row.data.get("id_claims") or {})),
    )
    await db.flush()
    log.info("console_token_refreshed", subject=row.subject)
    return tokens.access_token
