"""Login (authorization code + PKCE), logout (RP-initiated) and back-channel logout."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from socle_console.config import ConsoleSettings
from socle_console.deps import check_csrf, expired_cookie, login_cookie_name, safe_next, session_cookie
from socle_console.domain.auth.oidc import OidcClient, TokenRequestRefused
from socle_console.domain.auth.schemas import BackchannelLogoutForm, CsrfForm
from socle_console.domain.auth.services import (
    PendingLogin,
    cookie_key,
    discard,
    end_session,
    end_sessions_of,
    load_session,
    open_session,
    start_login,
    take_login,
)
from socle_core import access
from socle_core.auth import principal_from_claims
from socle_core.db import tenant_session
from socle_core.errors import Problem
from socle_core.inputs import IGNORED_QUERY_PARAMS

#: Errors Keycloak answers a ``prompt=none`` login with when it needs the user: ask again, visibly.
_INTERACTION_NEEDED = {"login_required", "interaction_required", "consent_required"}
_ALIAS = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ALL_ORGANIZATIONS = "openid organization:*"

#: What Keycloak adds to the authorization response besides ``code``, ``state`` and ``error``.
KEYCLOAK_CALLBACK_EXTRAS = ("session_state", "iss", "error_description", "error_uri")


class LoginFailed(Problem):
    status, slug, title = 400, "login-failed", "Échec de la connexion"


def organization_scope(alias: str) -> str:
    return f"openid organization:{alias}"


async def redirect_to_provider(
    db: AsyncSession,
    settings: ConsoleSettings,
    oidc: OidcClient,
    *,
    scope: str,
    next_path: str,
    silent: bool = False,
    replaces: str | None = None,
    memberships: list[str] | None = None,
    status_code: int = 302,
) -> Redirect:
    """Start a login: remember it server-side, bind it to this browser, send the browser to Keycloak."""
    cookie, pending = await start_login(
        db, settings, scope=scope, next_path=next_path, silent=silent, replaces=replaces, memberships=memberships
    )
    url = await oidc.authorization_url(
        state=pending.state,
        nonce=pending.nonce,
        code_verifier=pending.code_verifier,
        scope=scope,
        prompt="none" if silent else None,
    )
    response = Redirect(url, status_code=status_code)  # type: ignore[arg-type]
    response.set_cookie(
        session_cookie(settings, login_cookie_name(settings), cookie, "/auth/callback", settings.login_timeout_seconds)
    )
    return response


class AuthController(Controller):
    path = "/auth"
    include_in_schema = False

    @get("/login", access=access.public("starts the login"))
    async def login(
        self,
        state: State,
        db_session: NamedDependency[AsyncSession],
        oidc: NamedDependency[OidcClient],
        next_path: Annotated[str | None, QueryParameter(name="next")] = None,
        organization: FromQuery[str | None] = None,
    ) -> Redirect:
        """Send the browser to Keycloak; every membership is asked for, the console then lets the agent choose."""
        if organization is not None and not _ALIAS.match(organization):
            raise LoginFailed(f"{organization!r} n'est pas une clé de commune (par exemple commune-35238)")
        scope = organization_scope(organization) if organization else ALL_ORGANIZATIONS
        return await redirect_to_provider(db_session, state.settings, oidc, scope=scope, next_path=safe_next(next_path))

    @get(
        "/callback",
        opt={IGNORED_QUERY_PARAMS: KEYCLOAK_CALLBACK_EXTRAS},
        access=access.public("OIDC callback"),
    )
    async def callback(
        self,
        request: Request[Any, Any, Any],
        state: State,
        db_session: NamedDependency[AsyncSession],
        oidc: NamedDependency[OidcClient],
        login_state: Annotated[str | None, QueryParameter(name="state")] = None,
        code: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
    ) -> Redirect:
        """Keycloak's answer: check it belongs to the login this browser started, then open the session."""
        settings: ConsoleSettings = state.settings
        async with tenant_session(state.db_session_maker, None) as db:  # used once, even if the login fails
            pending = await take_login(db, request.cookies.get(login_cookie_name(settings)))
        if pending is None or not secrets.compare_digest(pending.state.encode(), (login_state or "").encode()):
            raise LoginFailed("cette connexion est inconnue, déjà utilisée ou expirée : recommencez depuis la console")
        if error:
            if pending.silent and error in _INTERACTION_NEEDED:
                return await redirect_to_provider(
                    db_session,
                    settings,
                    oidc,
                    scope=pending.scope,
                    next_path=pending.next_path,
                    replaces=pending.replaces,
                    memberships=pending.memberships,
                )
            raise LoginFailed(f"le fournisseur d'identité a refusé la connexion : {error}")
        if not code:
            raise LoginFailed("le fournisseur d'identité n'a envoyé ni code ni erreur")
        return await self._open(request, db_session, settings, oidc, pending, code)

    async def _open(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: ConsoleSettings,
        oidc: OidcClient,
        pending: PendingLogin,
        code: str,
    ) -> Redirect:
        try:
            tokens = await oidc.exchange_code(code, pending.code_verifier)
        except TokenRequestRefused as exc:
            raise LoginFailed("le fournisseur d'identité a refusé le code de connexion : recommencez") from exc
        if tokens.id_token is None:
            raise LoginFailed("le fournisseur d'identité n'a pas renvoyé de jeton d'identité")
        id_claims = await oidc.verify_id_token(tokens.id_token, nonce=pending.nonce)
        principal = principal_from_claims(await request.app.state.token_verifier.verify(tokens.access_token))
        if principal.subject != id_claims.get("sub"):
            raise LoginFailed("le jeton d'identité et le jeton d'accès désignent des personnes différentes")
        previous = request.cookies.get(settings.cookie_name)
        await discard(db_session, pending.replaces, cookie_key(previous) if previous else None)
        cookie, row = await open_session(db_session, settings, tokens, id_claims, principal, pending.memberships)
        agent = row.data["agent"]
        if agent["organization"]:
            home = f"/communes/{agent['organization']}"
            target = pending.next_path if pending.next_path.startswith(home) else home
        elif len(agent["organizations"]) > 1:
            target = "/choose-commune"
        else:
            target = "/account"
        response = Redirect(target, status_code=303)
        response.set_cookie(
            session_cookie(settings, settings.cookie_name, cookie, "/", settings.session_lifetime_seconds)
        )
        response.set_cookie(expired_cookie(settings, login_cookie_name(settings), "/auth/callback"))
        return response

    @post("/logout", access=access.console_session("ends the caller's own session"))
    async def logout(
        self,
        request: Request[Any, Any, Any],
        state: State,
        db_session: NamedDependency[AsyncSession],
        oidc: NamedDependency[OidcClient],
        data: Annotated[CsrfForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        """End the console session here, then the Keycloak session (RP-initiated logout)."""
        settings: ConsoleSettings = state.settings
        live = await load_session(db_session, request.cookies.get(settings.cookie_name))
        if live is None:
            target = "/"
        else:
            check_csrf(request, str(live.row.data["csrf"]), data.csrf_token)
            target = await oidc.end_session_url(live.tokens().get("id_token"))
            await end_session(db_session, live.row)
        response = Redirect(target, status_code=303)  # type: ignore[arg-type]
        response.set_cookie(expired_cookie(settings, settings.cookie_name, "/"))
        return response

    @post("/backchannel-logout", status_code=200, access=access.public("Keycloak's signed logout token"))
    async def backchannel_logout(
        self,
        db_session: NamedDependency[AsyncSession],
        oidc: NamedDependency[OidcClient],
        data: Annotated[BackchannelLogoutForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[None]:
        """Keycloak ended a session (logout elsewhere, admin, expiry): end the console sessions bound to it."""
        claims = await oidc.verify_logout_token(data.logout_token)
        await end_sessions_of(db_session, sid=claims.get("sid"), subject=claims.get("sub"))
        return Response(None, status_code=200, headers={"Cache-Control": "no-store"})
