"""Dependencies of the console's pages: the OIDC client, the agent's session, CSRF and cookies.

Pages are authenticated by the session cookie, not by a bearer token: the core's bearer
middleware is kept off the console's paths and ``provide_agent`` is their one check.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from litestar import Litestar, Request, Response
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from socle_console.config import ConsoleSettings
from socle_console.db.models import WebSession
from socle_console.domain.auth.oidc import OidcClient
from socle_console.domain.auth.services import Agent, LiveSession, SessionEnded, fresh_access_token, load_session
from socle_core.db import tenant_session
from socle_core.errors import Forbidden, ServiceUnavailable


class LoginRequired(Exception):
    """No live session: the browser is sent to the login, then back to where it was going."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def redirect_to_login(request: Request[Any, Any, Any], exc: LoginRequired) -> Response[Any]:
    settings: ConsoleSettings = request.app.state.settings
    response = Redirect(f"/auth/login?{urlencode({'next': exc.next_path})}", status_code=303)
    response.set_cookie(expired_cookie(settings, settings.cookie_name, "/"))
    return response


class CsrfRefused(Forbidden):
    slug, title = "csrf-refused", "Formulaire refusé"


@dataclass(frozen=True)
class AgentSession:
    """A logged-in agent with a fresh access token for the services the page calls."""

    row: WebSession
    agent: Agent
    csrf: str
    access_token: str
    memberships: list[str]

    def check_csrf(self, request: Request[Any, Any, Any], submitted: str) -> None:
        check_csrf(request, self.csrf, submitted)


def check_csrf(request: Request[Any, Any, Any], expected: str, submitted: str) -> None:
    """A POST must come from our own page: same origin, and the session's form token."""
    settings: ConsoleSettings = request.app.state.settings
    origin = request.headers.get("origin")
    if origin is not None and origin != settings.public_url:
        raise CsrfRefused(f"ce formulaire a été envoyé depuis {origin!r}, pas depuis la console")
    if not secrets.compare_digest(submitted.encode(), expected.encode()):
        raise CsrfRefused(
            "ce formulaire est périmé ou n'a pas été envoyé par la console : rechargez la page et réessayez"
        )


def session_cookie(settings: ConsoleSettings, name: str, value: str, path: str, max_age: int) -> Cookie:
    return Cookie(
        key=name,
        value=value,
        path=path,
        max_age=max_age,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def expired_cookie(settings: ConsoleSettings, name: str, path: str) -> Cookie:
    return session_cookie(settings, name, "", path, 0)


def login_cookie_name(settings: ConsoleSettings) -> str:
    return f"{settings.cookie_name}_login"


def provide_oidc(state: State) -> OidcClient:
    oidc: OidcClient | None = state.get("oidc")
    if oidc is None:
        raise ServiceUnavailable("la connexion n'est pas configurée : définissez SOCLE_CONSOLE_OIDC_CLIENT_SECRET")
    return oidc


async def provide_agent(request: Request[Any, Any, Any], state: State) -> AgentSession:
    """The agent behind the session cookie, with a fresh token; otherwise off to the login.

    Its own unit of work, committed before the page runs: a rotated refresh token must be
    kept even if the page then fails, and a session that could not be refreshed stays ended.
    """
    settings: ConsoleSettings = state.settings
    next_path = request.url.path if request.method == "GET" else "/"
    agent: AgentSession | None = None
    async with tenant_session(state.db_session_maker, None) as db:
        live = await load_session(db, request.cookies.get(settings.cookie_name))
        if live is not None:
            try:
                token = await fresh_access_token(db, settings, provide_oidc(state), state.token_verifier, live)
            except SessionEnded:
                pass  # refresh refused: the session is ended, the agent logs in again
            else:
                row = live.row
                agent = AgentSession(
                    row, Agent(**row.data["agent"]), str(row.data["csrf"]), token, list(row.data.get("memberships", []))
                )
    if agent is None:
        raise LoginRequired(next_path)
    return agent


async def provide_optional_session(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], state: State
) -> LiveSession | None:
    return await load_session(db_session, request.cookies.get(state.settings.cookie_name))


def safe_next(path: str | None) -> str:
    """Only a path of the console itself: never an open redirect to another site."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return "/"
    return path


def oidc_lifespan(settings: ConsoleSettings) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.oidc_http_timeout_seconds) as http:
            app.state.http = http
            app.state.oidc = OidcClient(settings, http) if settings.oidc_client_secret is not None else None
            yield

    return lifespan
