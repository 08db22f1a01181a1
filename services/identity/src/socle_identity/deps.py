"""Dependencies of the identity service's handlers: the Keycloak client and the caller's scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from pydantic import SecretStr

from socle_core.auth import Principal
from socle_core.errors import Forbidden, ServiceUnavailable
from socle_core.tenant import TenantId
from socle_identity.config import IdentitySettings
from socle_identity.keycloak import KeycloakAdminClient


@dataclass(frozen=True)
class TenantAdmin:
    """An administrator acting for exactly one tenant, with that tenant's organization alias."""

    tenant: TenantId
    organization: str
    subject: str


def provide_tenant_admin(
    request: Request[Principal, Any, Any], caller_tenant: NamedDependency[TenantId]
) -> TenantAdmin:
    """The admin acting for its token's tenant, with that tenant's organization (roles: on each route)."""
    principal = request.user
    if principal.organization is None:  # a tenant comes from exactly one organization; never otherwise
        raise Forbidden("ce jeton désigne une collectivité sans son organisation")
    return TenantAdmin(caller_tenant, principal.organization, principal.subject)


def provide_keycloak(state: State) -> KeycloakAdminClient:
    client: KeycloakAdminClient | None = state.get("keycloak")
    if client is None:
        raise ServiceUnavailable(
            "le service d'identité ne peut pas gérer Keycloak : définissez SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET"
        )
    return client


def keycloak_client(settings: IdentitySettings, secret: SecretStr) -> KeycloakAdminClient:
    """The platform client's admin client, as the service and its worker both open it."""
    return KeycloakAdminClient(
        settings.effective_keycloak_url,
        settings.effective_keycloak_realm,
        settings.keycloak_client_id,
        secret.get_secret_value(),
        timeout_seconds=settings.keycloak_timeout_seconds,
        max_attempts=settings.keycloak_max_attempts,
        backoff_seconds=settings.keycloak_backoff_seconds,
    )


def keycloak_lifespan(settings: IdentitySettings) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.keycloak_client_secret is None:
            app.state.keycloak = None
            yield
            return
        async with keycloak_client(settings, settings.keycloak_client_secret) as client:
            app.state.keycloak = client
            yield

    return lifespan
