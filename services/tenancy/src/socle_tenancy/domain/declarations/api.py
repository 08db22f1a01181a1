"""A small client of the tenancy API for the ``socle-tenants`` commands.

It authenticates as a confidential client (client credentials, the realm's
``socle-platform`` client by default), renews its token before it expires, and turns every
problem+json answer into an ``ApiError`` that says which call failed and why.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

DEFAULT_API = "http://127.0.0.1:8101"
DEFAULT_CLIENT_ID = "socle-platform"


class ApiError(Exception):
    """The tenancy API (or Keycloak) refused a call; ``problem`` is its problem+json body."""

    def __init__(self, message: str, status: int | None = None, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


class TenancyApi:
    def __init__(
        self,
        api_url: str,
        issuer: str,
        client_secret: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token_url = f"{issuer.rstrip('/')}/protocol/openid-connect/token"
        self._client_id = client_id
        self._secret = client_secret
        self._http = httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout, transport=transport)
        self._token: str | None = None
        self._expires = 0.0

    async def __aenter__(self) -> TenancyApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()

    async def _bearer(self) -> str:
        if self._token and time.monotonic() < self._expires:
            return self._token
        try:
            response = await self._http.post(
                self._token_url,
                data={"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._secret},
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach Keycloak at {self._token_url}: {exc!r}") from exc
        if response.status_code != 200:
            raise ApiError(
                f"Keycloak refused the {self._client_id!r} client credentials ({response.status_code}): "
                "check --issuer / SOCLE_TENANTS_ISSUER and SOCLE_TENANTS_CLIENT_SECRET",
                response.status_code,
            )
        body = response.json()
        self._token = str(body["access_token"])
        self._expires = time.monotonic() + max(int(body.get("expires_in", 60)) - 15, 5)
        return self._token

    async def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self._bearer()}"}
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the tenancy API at {self._http.base_url}: {exc!r}") from exc
        if response.status_code < 400 or response.status_code in ok:
            return response
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:300]}
        detail = problem.get("detail") if isinstance(problem, dict) else None
        raise ApiError(
            f"{method} {path} answered {response.status_code}: {detail or response.reason_phrase}",
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
