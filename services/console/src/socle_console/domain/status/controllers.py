"""The console's front page: is every service ready, and the way in.

Public (no login) because it shows only readiness, which every probe may already see.
"""

from __future__ import annotations

import asyncio

import httpx
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.response import Template

from socle_console.deps import provide_optional_session
from socle_console.domain.auth.services import LiveSession
from socle_core import access


async def _ready(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(f"{url}/health/ready", timeout=3)
    except httpx.HTTPError as exc:
        return f"injoignable ({type(exc).__name__})"
    return "prêt" if response.status_code == 200 else f"pas prêt ({response.status_code})"


class StatusController(Controller):
    path = "/"
    include_in_schema = False

    @get(
        "/",
        dependencies={"web_session": Provide(provide_optional_session)},
        access=access.public("landing page, no data"),
    )
    async def index(self, state: State, web_session: NamedDependency[LiveSession | None]) -> Template:
        urls: dict[str, str] = state.settings.service_urls
        statuses = await asyncio.gather(*(_ready(state.http, url) for url in urls.values()))
        return Template(
            "index.html",
            context={
                "statuses": list(zip(urls, statuses, strict=True)),
                "signed_in": web_session is not None,
                "login_enabled": state.oidc is not None,
            },
        )
