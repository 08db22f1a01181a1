"""HTTP API of offboarding: start, the identity export, completion; and of the way back, the import
of a commune from its bundle (start, completion). Each call is safe to repeat."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.audit import record, record_detached
from socle_core.auth import Principal, system_tenant
from socle_core.db import tenant_context
from socle_tenancy.db.models import Tenant
from socle_tenancy.domain.access import epci_admin, require_epci_admin
from socle_tenancy.domain.offboarding import services
from socle_tenancy.domain.offboarding.schemas import (
    CompletionIn,
    CompletionOut,
    IdentityExportOut,
    ImportCompletionIn,
    ImportCompletionOut,
    ImportIn,
    ImportOut,
    OffboardingIn,
)
from socle_tenancy.domain.onboarding.services import OnboardingWorkflow
from socle_tenancy.domain.tenants.controllers import ADMINISTERED
from socle_tenancy.domain.tenants.schemas import TenantOut
from socle_tenancy.domain.tenants.services import deployment_epci
from socle_tenancy.keycloak import KeycloakAdmin


async def _audit(session: AsyncSession, actor: Principal, tenant: Tenant, action: str, details: dict[str, Any]) -> None:
    """Each offboarding step in the leaving tenant's own chain (kept after the tenant is deleted).

    The request runs in the EPCI admin's context: the write opens the leaving tenant's.
    """
    leaving = system_tenant(tenant.id, reason=f"offboarding: record {action} in the leaving tenant's chain")
    async with tenant_context(session, leaving):
        await record(session, leaving, actor=actor.subject, action=action, target=tenant.key, details=details)


class OffboardingController(Controller):
    path = "/v1/tenants/{ref:str}/offboarding"
    tags = ["offboarding"]
    dependencies = ADMINISTERED

    @post("/", status_code=HTTP_200_OK, access=epci_admin("EPCI admin"))
    async def start(
        self,
        tenant: NamedDependency[Tenant],
        data: JSONBody[OffboardingIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        keycloak: NamedDependency[KeycloakAdmin],
    ) -> TenantOut:
        """The tenant starts leaving: status offboarding, its Keycloak organization disabled."""
        await services.start(db_session, keycloak, tenant, data.reason)
        await _audit(db_session, request.user, tenant, "offboarding.started", {"reason": data.reason})
        return TenantOut.of(tenant)

    @get("/identity", access=epci_admin("EPCI admin"))
    async def identity(
        self,
        tenant: NamedDependency[Tenant],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        keycloak: NamedDependency[KeycloakAdmin],
    ) -> IdentityExportOut:
        """The tenant's Keycloak organization with its domains and members, for the export bundle."""
        exported = IdentityExportOut.model_validate(await services.identity_export(keycloak, tenant))
        await _audit(
            db_session, request.user, tenant, "offboarding.identity_exported", {"members": len(exported.members)}
        )
        return exported

    @post("/completion", status_code=HTTP_200_OK, access=epci_admin("EPCI admin"))
    async def complete(
        self,
        tenant: NamedDependency[Tenant],
        data: JSONBody[CompletionIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        keycloak: NamedDependency[KeycloakAdmin],
        workflow: NamedDependency[OnboardingWorkflow],
    ) -> CompletionOut:
        """Once the tenant's data are exported and deleted: delete its organization, mark it deleted."""
        deleted, remaining = await services.complete(
            db_session, workflow.session_maker, keycloak, tenant, data.reason, data.bundle_sha256
        )
        await _audit(
            db_session,
            request.user,
            tenant,
            "offboarding.completed",
            {"bundle_sha256": data.bundle_sha256, "keycloak_organization_deleted": deleted},
        )
        return CompletionOut(
            tenant=TenantOut.of(tenant), keycloak_organization_deleted=deleted, remaining_rows=remaining
        )


class TenantImportController(Controller):
    """A commune comes back from its offboarding bundle (driven by ``socle-tenants import``)."""

    path = "/v1/tenants"
    tags = ["offboarding"]

    @post("/imports", access=epci_admin("EPCI admin: a commune back from its bundle"))
    async def start(
        self,
        data: JSONBody[ImportIn],
        request: Request[Principal, Any, Any],
        state: State,
        db_session: NamedDependency[AsyncSession],
    ) -> Response[ImportOut]:
        """The commune's registry row back (``importing``), under this platform's EPCI; 201 when written now."""
        epci = await deployment_epci(db_session)
        require_epci_admin(request.user, epci.siren if epci is not None and epci.siren else "")
        tenant, created = await services.start_import(db_session, data)
        if created:  # the platform's chain: the commune's own is restored verbatim before anything is added
            await record_detached(
                state.db_engine,
                None,
                actor=request.user.subject,
                action="tenant.import_started",
                target=tenant.key,
                outcome="success",
                details={"tenant_id": tenant.id, "bundle_sha256": data.bundle_sha256},
            )
        return Response(
            ImportOut(tenant=TenantOut.of(tenant), created=created),
            status_code=HTTP_201_CREATED if created else HTTP_200_OK,
        )

    @post(
        "/{ref:str}/import/completion",
        status_code=HTTP_200_OK,
        dependencies=ADMINISTERED,
        access=epci_admin("EPCI admin"),
    )
    async def complete(
        self,
        tenant: NamedDependency[Tenant],
        data: JSONBody[ImportCompletionIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        keycloak: NamedDependency[KeycloakAdmin],
        workflow: NamedDependency[OnboardingWorkflow],
    ) -> ImportCompletionOut:
        """Once its rows and audit chain are restored: its organization and members back, the commune active."""
        organization_id, members, skipped = await services.complete_import(
            db_session, workflow.session_maker, keycloak, tenant, data, request.user.subject
        )
        return ImportCompletionOut(
            tenant=TenantOut.of(tenant), organization_id=organization_id, members=members, skipped_members=skipped
        )
