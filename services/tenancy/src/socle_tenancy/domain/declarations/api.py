"""A small client of the tenancy API for the ``socle-tenants`` commands.

It calls the API as a person, with the session ``socle-login`` stored (``PersonSession``,
the default), or as a confidential client for automation (``ClientCredentials``, the realm's
``socle-platform`` client by default); either renews its token before it expires. Every
problem+json answer becomes an ``ApiError`` that says which call failed and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from socle_core import login
from socle_core.keycloak_admin import ClientCredentialsToken, KeycloakAuthError, KeycloakError

DEFAULT_API = "http://127.0.0.1:8101"
DEFAULT_CLIENT_ID = "socle-platform"


class ApiError(Exception):
    """The tenancy API (or Keycloak) refused a call; ``problem`` is its problem+json body."""

    def __init__(self, message: str, status: int | None = None, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


class Credentials(Protocol):
    """Where the commands' bearer tokens come from."""

    async def bearer(self, issuer: str, http: httpx.AsyncClient) -> str: ...


@dataclass
class PersonSession:
    """The person who ran ``socle-login`` on this machine: their stored session, refreshed as needed."""

    store: login.TokenStore = field(default_factory=login.TokenStore)

    async def bearer(self, issuer: str, http: httpx.AsyncClient) -> str:
        try:
            return await asyncio.to_thread(login.access_token, issuer, store=self.store)
        except login.LoginError as exc:
            raise ApiError(
                f"{exc} (ou, pour l'automatisation, --client-credentials avec SOCLE_TENANTS_CLIENT_SECRET)"
            ) from exc


@dataclass
class ClientCredentials:
    """A confidential client's own tokens (the core's client-credentials token client), for automation."""

    secret: str
    client_id: str = DEFAULT_CLIENT_ID
    _tokens: ClientCredentialsToken | None = None

    async def bearer(self, issuer: str, http: httpx.AsyncClient) -> str:
        if self._tokens is None:
            self._tokens = ClientCredentialsToken(issuer, self.client_id, self.secret, http=http)
        try:
            return await self._tokens.get()
        except KeycloakAuthError as exc:
            raise ApiError(
                f"Keycloak a refusé les identifiants du client {self.client_id!r} ({exc.status}) : "
                "vérifiez --issuer / SOCLE_TENANTS_ISSUER et SOCLE_TENANTS_CLIENT_SECRET",
                exc.status,
            ) from exc
        except KeycloakError as exc:
            raise ApiError(f"Keycloak est injoignable à {self._tokens.token_endpoint} : {exc.message}") from exc


class TenancyApi:
    def __init__(
        self,
        api_url: str,
        issuer: str,
        credentials: Credentials,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._issuer = issuer
        self._credentials = credentials
        self._http = httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout, transport=transport)

    async def __aenter__(self) -> TenancyApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self._credentials.bearer(self._issuer, self._http)}"}
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"l'API des collectivités est injoignable à {self._http.base_url} : {exc!r}") from exc
        if response.status_code < 400 or response.status_code in ok:
            return response
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:300]}
        detail = problem.get("detail") if isinstance(problem, dict) else None
        raise ApiError(
            f"{method} {path} a répondu {response.status_code} : {detail or response.reason_phrase}",
            response.status_code,
            problem if isinstance(problem, dict) else {},
        )

    async def get(self, path: str, **kwargs: Any) -> Any:
        return (await self.request("GET", path, **kwargs)).json()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return (await self.request("POST", path, json=body)).json()

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return (await self.request("PATCH", path, json=body)).json()

    async def tenants(self) -> AsyncIterator[dict[str, Any]]:
        """Every tenant of the registry, page by page."""
        offset = 0
        while True:
            page = await self.get("/v1/tenants", params={"limit": 200, "offset": offset})
            for item in page["items"]:
                yield item
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return
