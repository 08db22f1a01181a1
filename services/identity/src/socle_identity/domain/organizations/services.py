"""Suspension, resumption and deletion of a tenant's organization, for the platform.

Thin, idempotent wrappers over ``keycloak.organizations``; each effective change is recorded
in the organization's tenant chain (its ``tenant_id`` attribute, or the platform chain when it
has none) in the request's transaction. Repeating a call that changes nothing records nothing.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.audit import record
from socle_core.errors import NotFound
from socle_core.keycloak_admin import keycloak_problems
from socle_identity.keycloak import KeycloakAdminClient, Organization, Organizations

log = structlog.get_logger("socle.identity.organizations")


class OrganizationService:
    def __init__(self, session: AsyncSession, keycloak: KeycloakAdminClient, actor: str) -> None:
        self.session = session
        self.organizations = Organizations(keycloak)
        self.actor = actor

    async def suspend(self, alias: str) -> Organization:
        with keycloak_problems():
            before = await self._require(alias)
            after = await self.organizations.suspend(alias)
        if before.enabled:
            await self._audit("organization.suspended", after)
        return after

    async def resume(self, alias: str) -> Organization:
        with keycloak_problems():
            before = await self._require(alias)
            after = await self.organizations.resume(alias)
        if not before.enabled:
            await self._audit("organization.resumed", after)
        return after

    async def delete(self, alias: str) -> None:
        with keycloak_problems():
            organization = await self.organizations.get(alias)
            if organization is None:
                return
            deleted = await self.organizations.delete(alias)
        if deleted:
            await self._audit("organization.deleted", organization)

    async def _require(self, alias: str) -> Organization:
        organization = await self.organizations.get(alias)
        if organization is None:
            raise NotFound("aucune organisation avec cet alias", alias=alias)
        return organization

    async def _audit(self, action: str, organization: Organization) -> None:
        chain = organization.tenant_id or uuid.UUID(int=0)
        await record(
            self.session,
            chain,
            actor=self.actor,
            action=action,
            target=f"organization:{organization.alias}",
            details={"organization_id": organization.id, "tenant_id": organization.tenant_id},
        )
        log.info(action.replace(".", "_"), alias=organization.alias, by=self.actor)
