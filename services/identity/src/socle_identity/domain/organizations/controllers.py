"""``/v1/organizations/{alias}``: suspend, resume and delete a tenant's organization (platform only)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.auth import Principal
from socle_identity.domain.organizations.schemas import OrganizationState
from socle_identity.domain.organizations.services import OrganizationService
from socle_identity.jobs import platform_caller
from socle_identity.keycloak import KeycloakAdminClient, Organization


def provide_platform_caller(request: Request[Principal, Any, Any]) -> str:
    """The subject of the caller the routes admitted: the operator, or the platform's own client."""
    return request.user.subject


def provide_organizations(
    db_session: NamedDependency[AsyncSession],
    keycloak: NamedDependency[KeycloakAdminClient],
    platform_caller: NamedDependency[str],
) -> OrganizationService:
    return OrganizationService(db_session, keycloak, platform_caller)


class OrganizationController(Controller):
    path = "/v1/organizations"
    tags = ["organizations"]
    dependencies = {
        "platform_caller": Provide(provide_platform_caller, sync_to_thread=False),
        "organizations": Provide(provide_organizations, sync_to_thread=False),
    }

    @post(
        "/{alias:str}/suspension",
        status_code=200,
        summary="Suspend: the members cannot log in any more",
        access=platform_caller("operator or platform"),
    )
    async def suspend(
        self, alias: FromPath[str], organizations: NamedDependency[OrganizationService]
    ) -> OrganizationState:
        return _state(await organizations.suspend(alias))

    @delete(
        "/{alias:str}/suspension",
        status_code=200,
        summary="Resume: the members suspension disabled log in again",
        access=platform_caller("operator or platform"),
    )
    async def resume(
        self, alias: FromPath[str], organizations: NamedDependency[OrganizationService]
    ) -> OrganizationState:
        return _state(await organizations.resume(alias))

    @delete(
        "/{alias:str}",
        summary="Delete the organization and its memberships (accounts stay)",
        access=platform_caller("operator or platform client"),
    )
    async def remove(self, alias: FromPath[str], organizations: NamedDependency[OrganizationService]) -> None:
        await organizations.delete(alias)


def _state(organization: Organization) -> OrganizationState:
    return OrganizationState(
        alias=organization.alias,
        name=organization.name,
        tenant_id=organization.tenant_id,
        enabled=organization.enabled,
        domains=list(organization.domains),
    )
