"""Transport to Keycloak's admin REST API: token, retries with backoff, timeouts, typed errors.

The services that manage the realm (identity: organizations, members, service accounts;
tenancy: onboarding and offboarding) authenticate as the confidential client
``socle-platform`` with the client-credentials grant; its access token is cached until
shortly before it expires (and dropped when Keycloak answers 401, e.g. after a key
rotation). Connection errors, timeouts and 5xx answers are retried with exponential backoff;
a 4xx answer is never retried, it becomes a ``KeycloakRefused`` (or a subclass) carrying
Keycloak's own message. Each service turns these errors into its own problem+json answers.

``KeycloakError``
├── ``KeycloakUnavailable``   Keycloak did not answer (network error, timeout, 5xx after retries)
├── ``KeycloakAuthError``     our platform client could not get or use its token (401/403)
└── ``KeycloakRefused``       Keycloak answered and said no (4xx): carries its status and message
    ├── ``KeycloakNotFound``  404
    └── ``KeycloakConflict``  409 (duplicate name, alias, clientId...)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import structlog

log = structlog.get_logger("socle.keycloak")


class KeycloakError(Exception):
    """Base of every error of the Keycloak admin client."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"{message} ({method} {path})" if method else message)
        self.message = message
        self.method = method
        self.path = path


class KeycloakUnavailable(KeycloakError):
    """Keycloak could not be reached or kept failing with a server error."""


class KeycloakAuthError(KeycloakError):
    """The platform client's credentials or permissions were refused."""


class KeycloakRefused(KeycloakError):
    """Keycloak refused the request; ``status`` and ``detail`` come from its answer."""

    def __init__(self, status: int, detail: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"Keycloak a refusé avec {status} : {detail}", method=method, path=path)
        self.status = status
        self.detail = detail


class KeycloakNotFound(KeycloakRefused):
    """The organization, client or user does not exist in the realm."""


class KeycloakConflict(KeycloakRefused):
    """An object with the same unique name already exists, or the change contradicts one."""


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
        admin_url: str | None = None,
        credentials_hint: str = "son identifiant et son secret de client",
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``admin_url`` overrides ``{base_url}/admin/realms/{realm}`` (an admin API on another host);
        ``credentials_hint`` names what to check when the client's token is refused (e.g. the settings)."""
        self.base_url = base_url.rstrip("/")
        self.realm = realm
        self.client_id = client_id
        self._secret = client_secret
        self._admin_url = admin_url.rstrip("/") if admin_url else None
        self._credentials_hint = credentials_hint
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self._http = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()

    @property
    def admin_base(self) -> str:
        return self._admin_url or f"{self.base_url}/admin/realms/{self.realm}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/realms/{self.realm}/protocol/openid-connect/token"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KeycloakAdminClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def access_token(self) -> str:
        """The platform client's access token (also what a service sends to another as the platform)."""
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
                    f"le client de plateforme {self.client_id!r} n'obtient pas de jeton : "
                    f"{response.status_code} {_message(response)} ; vérifiez {self._credentials_hint}",
                    method="POST",
                    path="/protocol/openid-connect/token",
                )
            body = response.json()
            self._token = str(body["access_token"])
            self._token_expires_at = time.monotonic() + float(body.get("expires_in", 60)) - _TOKEN_MARGIN_SECONDS
            return self._token

    async def _send(self, method: str, url: str, *, attempts: int | None = None, **kwargs: Any) -> httpx.Response:
        """One call, retried on connection errors, timeouts and 5xx answers."""
        delay = self.backoff_seconds
        attempts = attempts or self.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    return response
                failure = f"{response.status_code} {_message(response)}"
            if attempt < attempts:
                log.warning("keycloak_retry", method=method, url=url, attempt=attempt, failure=failure)
                await asyncio.sleep(delay)
                delay *= 2
        raise KeycloakUnavailable(
            f"Keycloak n'a pas répondu après {attempts} tentative{'s' if attempts > 1 else ''} : {failure}",
            method=method,
            path=url,
        )

    async def request(
        self, method: str, path: str, *, expected: tuple[int, ...] = (), attempts: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        """An admin API call (``path`` relative to the realm); 4xx answers become typed errors.

        ``expected`` lists 4xx statuses the caller handles itself (e.g. 404 for "absent");
        ``attempts`` overrides the client's retries for a call not worth repeating (1: no retry).
        """
        for fresh_token in (False, True):
            if fresh_token:
                self._token = None
            headers = {"Authorization": f"Bearer {await self.access_token()}"}
            response = await self._send(
                method, f"{self.admin_base}{path}", headers=headers, attempts=attempts, **kwargs
            )
            if response.status_code != 401:
                break
        status = response.status_code
        if status < 400 or status in expected:
            return response
        detail = _message(response)
        if status in (401, 403):
            raise KeycloakAuthError(
                f"le client de plateforme {self.client_id!r} n'a pas le droit de faire cela : {status} {detail} ; "
                "vérifiez ses rôles realm-management",
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
