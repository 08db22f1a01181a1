"""The console's platform status page: is every service ready?

Public (no login) because it shows only readiness, which every probe may already see.
"""

from __future__ import annotations

import asyncio
import html

import httpx
from litestar import Controller, MediaType, get
from litestar.datastructures import State


async def _ready(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(f"{url}/health/ready", timeout=3)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"not ready ({response.status_code})"


class StatusController(Controller):
    path = "/"

    @get("/", media_type=MediaType.HTML, include_in_schema=False)
    async def index(self, state: State) -> str:
        urls: dict[str, str] = state.settings.service_urls
        async with httpx.AsyncClient() as client:
            statuses = await asyncio.gather(*(_ready(client, url) for url in urls.values()))
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(status)}</td></tr>"
            for name, status in zip(urls, statuses, strict=True)
        )
        return (
            "<!doctype html><html lang='fr'><head><meta charset='utf-8'><title>Socle</title></head>"
            "<body><h1>Socle</h1><p>Plateforme de données territoriales partagée de l'EPCI.</p>"
            f"<h2>État des services</h2><table><tr><th>service</th><th>état</th></tr>{rows}</table>"
            "</body></html>"
        )
