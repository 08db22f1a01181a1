"""What can go wrong when the identity service talks to Keycloak's admin REST API.

``KeycloakError``
├── ``KeycloakUnavailable``   Keycloak did not answer (network error, timeout, 5xx after retries)
├── ``KeycloakAuthError``     our platform client could not get or use its token (401/403)
└── ``KeycloakRefused``       Keycloak answered and said no (4xx): carries its status and message
    ├── ``KeycloakNotFound``  404
    └── ``KeycloakConflict``  409 (duplicate name, alias, clientId...)

Each error says which call failed and why, so an operator can act on the log line alone.
"""

from __future__ import annotations


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
        super().__init__(f"Keycloak refused with {status}: {detail}", method=method, path=path)
        self.status = status
        self.detail = detail


class KeycloakNotFound(KeycloakRefused):
    """The organization, client or user does not exist in the realm."""


class KeycloakConflict(KeycloakRefused):
    """An object with the same unique name already exists, or the change contradicts one."""
