"""Transport to Keycloak's admin REST API: token, retries with backoff, timeouts, typed errors.

The services that manage the realm (identity: organizations, members, service accounts;
tenancy: onboarding and offboarding) authenticate as the confidential client
``socle-platform`` with the client-credentials grant; its access token is cached until
shortly before it expires (and dropped when Keycloak answers 401, e.g. after a key
rotation). Connection errors, timeouts and 5xx answers are retried with exponential backoff;
a 4xx answer is never retried, it becomes a ``KeycloakRefused`` (or a subclass) carrying
Keycloak's own message. ``keycloak_problem`` (or the ``keycloak_problems`` block) turns these
errors into the same problem+json answers in every service, Keycloak's message logged, never
shown to the caller:

=====================================  =====  ===================================
Keycloak                               HTTP   problem type
=====================================  =====  ===================================
400 (and any other 4xx but those)      422    ``identity-provider-refused``
404, for what the caller named         404    ``not-found``
404, for what the platform expected    502    ``identity-provider-error``
409                                    409    ``identity-provider-conflict``
401/403 (our own credentials)          502    ``identity-provider-error``
5xx after retries, timeout, no answer  503    ``identity-provider-unavailable``
=====================================  =====  ===================================

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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import structlog

from socle_core.errors import Conflict, InvalidInput, NotFound, Problem, ServiceUnavailable

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
    """The platform client's credentials or permissions were refused; ``status`` is Keycloak's answer."""

    def __init__(self, message: str, *, status: int | None = None, method: str = "", path: str = "") -> None:
        super().__init__(message, method=method, path=path)
        self.status = status


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


async def send_with_retries(
    http: httpx.AsyncClient, method: str, url: str, *, attempts: int, backoff_seconds: float, **kwargs: Any
) -> httpx.Response:
    """One call, retried with exponential backoff on connection errors, timeouts and 5xx answers."""
    delay = backoff_seconds
    for attempt in range(1, attempts + 1):
        try:
            response = await http.request(method, url, **kwargs)
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


class ClientCredentialsToken:
    """A confidential client's access token (client-credentials grant), cached until shortly before it expires.

    The platform's one token client: the admin client below, the tenants CLI and the isolation
    probes get their tokens from it. ``http`` stays the caller's (this class never closes it).
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        http: httpx.AsyncClient,
        credentials_hint: str = "son identifiant et son secret de client",
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.token_endpoint = f"{issuer.rstrip('/')}/protocol/openid-connect/token"
        self.client_id = client_id
        self._secret = client_secret
        self._http = http
        self._credentials_hint = credentials_hint
        self._attempts = max(1, max_attempts)
        self._backoff = backoff_seconds
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Drop the cached token (Keycloak refused it, e.g. after a key rotation)."""
        self._token = None

    async def get(self) -> str:
        async with self._lock:
            if self._token is not None and time.monotonic() < self._expires_at:
                return self._token
            response = await send_with_retries(
                self._http,
                "POST",
                self.token_endpoint,
                attempts=self._attempts,
                backoff_seconds=self._backoff,
                data={"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret},
            )
            if response.status_code != 200:
                raise KeycloakAuthError(
                    f"le client {self.client_id!r} n'obtient pas de jeton : "
                    f"{response.status_code} {_message(response)} ; vérifiez {self._credentials_hint}",
                    status=response.status_code,
                    method="POST",
                    path="/protocol/openid-connect/token",
                )
            body = response.json()
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 60))
            self._expires_at = time.monotonic() + max(lifetime - _TOKEN_MARGIN_SECONDS, lifetime / 2)
            return self._token


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
        self._admin_url = admin_url.rstrip("/") if admin_url else None
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self._http = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self._tokens = ClientCredentialsToken(
            f"{self.base_url}/realms/{realm}",
            client_id,
            client_secret,
            http=self._http,
            credentials_hint=credentials_hint,
            max_attempts=self.max_attempts,
            backoff_seconds=backoff_seconds,
        )

    @property
    def admin_base(self) -> str:
        return self._admin_url or f"{self.base_url}/admin/realms/{self.realm}"

    @property
    def token_endpoint(self) -> str:
        return self._tokens.token_endpoint

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KeycloakAdminClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def access_token(self) -> str:
        """The platform client's access token (also what a service sends to another as the platform)."""
        return await self._tokens.get()

    async def _send(self, method: str, url: str, *, attempts: int | None = None, **kwargs: Any) -> httpx.Response:
        return await send_with_retries(
            self._http,
            method,
            url,
            attempts=attempts or self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            **kwargs,
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
                self._tokens.forget()
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
                status=status,
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


class IdentityProviderUnavailable(ServiceUnavailable):
    """Keycloak did not answer (or only with server errors): a retry later may succeed."""

    slug, title = "identity-provider-unavailable", "Fournisseur d'identité indisponible"

    def __init__(self, detail: str, **kwargs: Any) -> None:
        super().__init__(detail, headers={"Retry-After": "30", **(kwargs.pop("headers", None) or {})}, **kwargs)


class IdentityProviderError(Problem):
    """Keycloak refused the platform itself (its credentials, its roles) or lost what it expected: ours to fix."""

    status, slug, title = 502, "identity-provider-error", "Erreur du fournisseur d'identité"


class IdentityProviderConflict(Conflict):
    """The change contradicts an object of the realm (a name, an alias, a domain taken)."""

    slug, title = "identity-provider-conflict", "Conflit avec le fournisseur d'identité"


class IdentityProviderRefused(InvalidInput):
    """Keycloak found the request invalid (its 400): the same request will be refused again."""

    slug, title = "identity-provider-refused", "Refusé par le fournisseur d'identité"


UNAVAILABLE = "le fournisseur d'identité ne répond pas : réessayez dans quelques instants"
MISCONFIGURED = "le fournisseur d'identité refuse les identifiants de la plateforme : l'exploitant doit les vérifier"
LOST = "le fournisseur d'identité ne connaît pas un objet que la plateforme attendait : l'exploitant doit vérifier"
CONFLICT = "le fournisseur d'identité refuse ce changement : un nom, un alias ou un domaine est déjà pris"
REFUSED = "le fournisseur d'identité refuse cette demande : vérifiez les valeurs envoyées"


def keycloak_problem(
    exc: KeycloakError, *, not_found: str | None = None, conflict: str = CONFLICT, refused: str = REFUSED
) -> Problem:
    """The problem a Keycloak failure is for the caller; Keycloak's own message goes to the log only.

    ``not_found``: the caller's words when a 404 means that what the caller named does not
    exist (a 404 then); without it a 404 is something the platform expected to be there
    (a 502). ``conflict`` and ``refused`` give a service its own words for a 409 and a 400.
    """
    status = exc.status if isinstance(exc, KeycloakRefused) else None
    log.warning(
        "keycloak_failure",
        error_type=type(exc).__name__,
        keycloak_status=status,
        keycloak_message=exc.detail if isinstance(exc, KeycloakRefused) else exc.message,
        method=exc.method,
        path=exc.path,
    )
    if isinstance(exc, KeycloakAuthError):
        return IdentityProviderError(MISCONFIGURED)
    if isinstance(exc, KeycloakNotFound) or status == 404:
        return NotFound(not_found) if not_found else IdentityProviderError(LOST)
    if isinstance(exc, KeycloakConflict) or status == 409:
        return IdentityProviderConflict(conflict)
    if status is not None and status < 500:
        return IdentityProviderRefused(refused)
    if status is not None:  # a 5xx a caller raised itself (an answer we cannot use)
        return IdentityProviderError(LOST)
    return IdentityProviderUnavailable(UNAVAILABLE)


@contextmanager
def keycloak_problems(
    *, not_found: str | None = None, conflict: str = CONFLICT, refused: str = REFUSED
) -> Iterator[None]:
    """A block whose Keycloak failures leave it as ``keycloak_problem``'s answers."""
    try:
        yield
    except KeycloakError as exc:
        raise keycloak_problem(exc, not_found=not_found, conflict=conflict, refused=refused) from exc
