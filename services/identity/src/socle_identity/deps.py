"""Dependencies of the identity service's handlers: the Keycloak client and the caller's scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State

from socle_core.auth import Principal
from socle_core.errors import Forbidden, ServiceUnavailable
from socle_core.tenant import TenantId
from socle_identity.config import IdentitySettings
from socle_identity.keycloak import KeycloakAdminClient

#: Roles allowed to manage a tenant's service accounts.
SERVICE_ACCOUNT_ADMIN_ROLES = ("commune-admin",)


@dataclass(frozen=True)
class TenantAdmin:
    """An administrator acting for exactly one tenant, with that tenant's organization alias."""

    tenant: TenantId
    organization: str
    subject: str


def provide_tenant_admin(request: Request[Principal, Any, Any]) -> TenantAdmin:
    """The one authorization check of tenant administration endpoints."""
    principal = request.user
    tenant = principal.require_tenant()
    principal.require_role(*SERVICE_ACCOUNT_ADMIN_ROLES)
    if principal.organization is None:  # a tenant comes from exactly one organization; never otherwise
        raise Forbidden("this token names a tenant without its organization")
    return TenantAdmin(tenant, principal.organization, principal.subject)


def provide_keycloak(state: State) -> KeycloakAdminClient:
    client: KeycloakAdminClient | None = state.get("keycloak")
    if client is None:
        raise ServiceUnavailable(
            "the identity service cannot manage Keycloak: set SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET"
        )
    return client


def keycloak_lifespan(settings: IdentitySettings) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.keycloak_client_secret is None:
            app.state.keycloak = None
            yield
            return
        async with KeycloakAdminClient(
            settings.effective_keycloak_url,
            settings.effective_keycloak_realm,
            settings.keycloak_client_id,
            settings.keycloak_client_secret.get_secret_value(),
            timeout_seconds=settings.keycloak_timeout_seconds,
            max_attempts=settings.keycloak_max_attempts,
            backoff_seconds=settings.keycloak_backoff_seconds,
        ) as client:
            app.state.keycloak = client
            yield

    return lifespan
