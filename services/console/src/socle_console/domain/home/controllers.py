"""The agent's pages: who they are, their commune, and the choice of commune for shared agents.

Every page under ``/communes/<alias>`` checks that the alias is the session's commune; any
other commune does not exist for this agent (404), whether or not it exists on the platform.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from litestar import Controller, Request, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from socle_console.deps import AgentSession, LoginRequired, provide_agent, redirect_to_login
from socle_console.domain.auth.controllers import organization_scope, redirect_to_provider
from socle_console.domain.auth.oidc import OidcClient
from socle_console.domain.auth.schemas import CommuneChoiceForm
from socle_core import access
from socle_core.errors import NotFound

PRIVATE_PAGE_HEADERS = [
    ResponseHeader(name="Cache-Control", value="no-store"),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="Content-Security-Policy", value="default-src 'self'; frame-ancestors 'none'"),
]


async def identity_view(http: httpx.AsyncClient, urls: dict[str, str], token: str) -> dict[str, Any] | None:
    """What the identity service understands of the agent's token (a call made with that token)."""
    base = urls.get("identity")
    if not base:
        return None
    try:
        response = await http.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        return {"error": f"service d'identité injoignable ({type(exc).__name__})"}
    if response.status_code != 200:
        return {"error": f"le service d'identité a répondu {response.status_code}"}
    return dict(response.json())


class AgentController(Controller):
    path = "/"
    include_in_schema = False
    dependencies = {"agent": Provide(provide_agent)}
    exception_handlers = {LoginRequired: redirect_to_login}
    response_headers = PRIVATE_PAGE_HEADERS

    @get("/account", access=access.console_session("the agent's own account"))
    async def account(self, agent: NamedDependency[AgentSession]) -> Template:
        return Template(
            "account.html", context={"agent": agent.agent, "csrf": agent.csrf, "memberships": agent.memberships}
        )

    @get("/communes/{alias:str}", access=access.console_session("404 for another alias"))
    async def commune(self, alias: FromPath[str], agent: NamedDependency[AgentSession], state: State) -> Template:
        """The commune's home page; the services are called with the agent's own token."""
        if agent.agent.organization != alias:
            raise NotFound(f"aucune commune « {alias} » dans cette console")
        identity = await identity_view(state.http, state.settings.service_urls, agent.access_token)
        return Template(
            "commune.html", context={"agent": agent.agent, "csrf": agent.csrf, "alias": alias, "identity": identity}
        )

    @get("/choose-commune", access=access.console_session("the agent's own communes"))
    async def choose(self, agent: NamedDependency[AgentSession]) -> Template:
        return Template(
            "choose.html", context={"agent": agent.agent, "csrf": agent.csrf, "memberships": agent.memberships}
        )

    @post("/choose-commune", access=access.console_session("the agent's own communes"))
    async def chosen(
        self,
        request: Request[Any, Any, Any],
        agent: NamedDependency[AgentSession],
        state: State,
        db_session: NamedDependency[AsyncSession],
        oidc: NamedDependency[OidcClient],
        data: Annotated[CommuneChoiceForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        """Re-authenticate (silently when Keycloak's session allows) for exactly the chosen commune."""
        agent.check_csrf(request, data.csrf_token)
        if data.organization not in agent.memberships:
            raise NotFound(f"aucune commune « {data.organization} » parmi les vôtres")
        return await redirect_to_provider(
            db_session,
            state.settings,
            oidc,
            scope=organization_scope(data.organization),
            next_path=f"/communes/{data.organization}",
            silent=True,
            replaces=agent.row.id,
            memberships=agent.memberships,
            status_code=303,
        )
