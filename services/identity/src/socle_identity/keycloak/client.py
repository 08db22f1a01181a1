"""Transport to Keycloak's admin REST API: token, retries with backoff, timeouts, typed errors.

The identity service authenticates as the confidential client ``socle-platform`` with the
client-credentials grant; its access token is cached until shortly before it expires (and
dropped when Keycloak answers 401, e.g. after a key rotation). Connection errors, timeouts
and 5xx answers are retried with exponential backoff; a 4xx answer is never retried, it
becomes a ``KeycloakRefused`` (or a subclass) carrying Keycloak's own message.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import structlog

from socle_identity.keycloak.errors import (
    KeycloakAuthError,
    KeycloakConflict,
    KeycloakNotFound,
    KeycloakRefused,
    KeycloakUnavailable,
)

log = structlog.get_logger("socle.identity.keycloak")

#: Seconds before the token's expiry at which a new one is requested.
_TOKEN_MARGIN_SECONDS = 15.0


class KeycloakAdminClient:
    """Authenticated, retried calls to ``{base_url}/admin/realms/{realm}``."""

    def __init__(
        self,
        base_url: str,
        realm: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm = realm
        self.client_id = client_id
        self._secret = client_secret
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self._http = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()

    @property
    def admin_base(self) -> str:
        return f"{self.base_url}/admin/realms/{self.realm}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/realms/{self.realm}/protocol/openid-connect/token"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KeycloakAdminClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _access_token(self) -> str:
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._token_expires_at:
                return self._token
            response = await self._send(
                "POST",
                self.token_endpoint,
                data={"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret},
            )
            if response.status_code != 200:
                raise KeycloakAuthError(
                    f"the platform client {self.client_id!r} cannot get a token: "
                    f"{response.status_code} {_message(response)}; check its client id and secret",
                    method="POST",
                    path="/protocol/openid-connect/token",
                )
            body = response.json()
            self._token = str(body["access_token"])
            self._token_expires_at = time.monotonic() + float(body.get("expires_in", 60)) - _TOKEN_MARGIN_SECONDS
            return self._token

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call, retried on connection errors, timeouts and 5xx answers."""
        delay = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    return response
                failure = f"{response.status_code} {_message(response)}"
            if attempt < self.max_attempts:
                log.warning("keycloak_retry", method=method, url=url, attempt=attempt, failure=failure)
                await asyncio.sleep(delay)
                delay *= 2
        raise KeycloakUnavailable(
            f"Keycloak did not answer after {self.max_attempts} attempts: {failure}", method=method, path=url
        )

    async def request(self, method: str, path: str, *, expected: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """An admin API call (``path`` relative to the realm); 4xx answers become typed errors.

        ``expected`` lists 4xx statuses the caller handles itself (e.g. 404 for "absent").
        """
        for fresh_token in (False, True):
            if fresh_token:
                self._token = None
            headers = {"Authorization": f"Bearer {await self._access_token()}"}
            response = await self._send(method, f"{self.admin_base}{path}", headers=headers, **kwargs)
            if response.status_code != 401:
                break
        status = response.status_code
        if status < 400 or status in expected:
            return response
        detail = _message(response)
        if status in (401, 403):
            raise KeycloakAuthError(
                f"the platform client {self.client_id!r} is not allowed to do this: {status} {detail}; "
                "check its realm-management roles",
                method=method,
                path=path,
            )
        if status == 404:
            raise KeycloakNotFound(status, detail, method=method, path=path)
        if status == 409:
            raise KeycloakConflict(status, detail, method=method, path=path)
        raise KeycloakRefused(status, detail, method=method, path=path)


def _message(response: httpx.Response) -> str:
    """Keycloak's error text, whichever of its shapes it used."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("errorMessage", "error_description", "error", "message"):
            if body.get(key):
                return str(body[key])
    return str(body)[:300]


def location_id(response: httpx.Response) -> str:
    """The id of a created object, from the ``Location`` header of a 201 answer."""
    return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
