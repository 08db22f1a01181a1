"""HTTP API of the tenant registry: the EPCI, its candidates, tenants and their lifecycle."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core import access
from socle_core.auth import Principal
from socle_core.inputs import MAX_INT32
from socle_core.roles import COMMUNE_ROLES
from socle_reference import ReferenceCatalogue
from socle_tenancy.db.models import Tenant, TenantKind, TenantStatus
from socle_tenancy.domain.access import REGISTRY_READERS, epci_admin, require_epci_admin
from socle_tenancy.domain.onboarding.schemas import OnboardingOut, QuotasIn, StepOut
from socle_tenancy.domain.onboarding.services import OnboardingWorkflow, is_completed
from socle_tenancy.domain.tenants import services
from socle_tenancy.domain.tenants.deps import provide_administered_tenant
from socle_tenancy.domain.tenants.schemas import (
    CandidatesOut,
    EpciIn,
    EpciOut,
    QuotasOut,
    StatusChangeIn,
    TenantOut,
    TenantPage,
    TenantPatchIn,
)
from socle_tenancy.keycloak import KeycloakAdmin

#: The handlers only the EPCI's administrators may call get the path's tenant as ``tenant``.
ADMINISTERED = {"tenant": Provide(provide_administered_tenant)}
#: A tenant's registry entry: platform roles read any, a commune's members only their own (404 otherwise).
READ_OWN_TENANT = access.tenant_resource(*COMMUNE_ROLES, roles=REGISTRY_READERS, target="tenant", why="")


class EpciController(Controller):
    path = "/v1/epcis"
    tags = ["epci"]

    @post(
        "/",
        responses={HTTP_200_OK: ResponseSpec(EpciOut, description="Already registered: the EPCI as it is")},
        access=epci_admin("register the deployment's EPCI"),
    )
    async def register(
        self,
        data: JSONBody[EpciIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        catalogue: NamedDependency[ReferenceCatalogue],
    ) -> Response[EpciOut]:
        """Register the deployment's EPCI by SIREN; its member communes come back as candidates."""
        epci = services.reference_epci(catalogue, data.siren)
        require_epci_admin(request.user, epci.siren)
        tenant, created = await services.register_epci(db_session, catalogue, epci.siren)
        body = EpciOut(
            tenant=TenantOut.of(tenant),
            kind_label=epci.kind_label,
            member_count=epci.member_count,
            reference=f"{catalogue.source.package} {catalogue.source.version}",
            candidates=await services.candidates(db_session, catalogue, tenant),
        )
        return Response(body, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/{siren:str}/candidates", access=epci_admin("EPCI admin"))
    async def list_candidates(
        self,
        siren: FromPath[str],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        catalogue: NamedDependency[ReferenceCatalogue],
    ) -> CandidatesOut:
        """Member communes of the EPCI from the official reference, with their tenant status."""
        require_epci_admin(request.user, siren)
        epci = await services.registered_epci(db_session, siren)
        return CandidatesOut(epci_siren=siren, candidates=await services.candidates(db_session, catalogue, epci))


class TenantController(Controller):
    path = "/v1/tenants"
    tags = ["tenants"]

    @get("/", access=access.platform(*REGISTRY_READERS, why="registry metadata, platform roles"))
    async def list_tenants(
        self,
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=MAX_INT32)] = 0,
        kind: FromQuery[TenantKind | None] = None,
        status: FromQuery[TenantStatus | None] = None,
    ) -> TenantPage:
        """The registry, EPCI first then communes by key; offset pagination."""
        items, total = await services.list_tenants(db_session, limit=limit, offset=offset, kind=kind, status=status)
        return TenantPage(items=[TenantOut.of(t) for t in items], total=total, limit=limit, offset=offset)

    @get("/{ref:str}", access=READ_OWN_TENANT.because("a tenant reads only its own registry entry"))
    async def get_tenant(
        self,
        ref: FromPath[str],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        workflow: NamedDependency[OnboardingWorkflow],
    ) -> OnboardingOut:
        """A tenant (by id, key or INSEE code) with the state of its onboarding steps."""
        tenant = await services.readable_tenant(db_session, request.user, ref, path=request.url.path)
        _, steps = await workflow.state(tenant.id)
        return OnboardingOut(
            tenant=TenantOut.of(tenant), completed=is_completed(steps), steps=[StepOut.of(s) for s in steps]
        )

    @patch("/{ref:str}", dependencies=ADMINISTERED, access=epci_admin("EPCI admin renames a tenant"))
    async def update_tenant(
        self,
        data: JSONBody[TenantPatchIn],
        tenant: NamedDependency[Tenant],
        db_session: NamedDependency[AsyncSession],
        keycloak: NamedDependency[KeycloakAdmin],
    ) -> TenantOut:
        """Rename an onboarded tenant or replace its e-mail domains (Keycloak organization included)."""
        await services.update_tenant(db_session, keycloak, tenant, name=data.name, email_domains=data.email_domains)
        return TenantOut.of(tenant)

    @get("/{ref:str}/quotas", access=READ_OWN_TENANT.because("a tenant reads only its own quotas"))
    async def get_quotas(
        self,
        ref: FromPath[str],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        workflow: NamedDependency[OnboardingWorkflow],
    ) -> QuotasOut:
        """A tenant's current limits (a tenant reads its own)."""
        tenant = await services.readable_tenant(db_session, request.user, ref, path=request.url.path)
        quota = await services.tenant_quotas(workflow.session_maker, tenant)
        return QuotasOut.model_validate(quota, from_attributes=True)

    @patch("/{ref:str}/quotas", dependencies=ADMINISTERED, access=epci_admin("EPCI admin sets quotas"))
    async def update_quotas(
        self,
        data: JSONBody[QuotasIn],
        tenant: NamedDependency[Tenant],
        workflow: NamedDependency[OnboardingWorkflow],
    ) -> QuotasOut:
        """Change some of an onboarded tenant's limits; those left out stay."""
        quota = await services.update_quotas(workflow.session_maker, tenant, data.model_dump(exclude_none=True))
        return QuotasOut.model_validate(quota, from_attributes=True)

    @post("/{ref:str}/suspend", status_code=HTTP_200_OK, dependencies=ADMINISTERED, access=epci_admin("EPCI admin"))
    async def suspend(
        self,
        data: JSONBody[StatusChangeIn],
        tenant: NamedDependency[Tenant],
        db_session: NamedDependency[AsyncSession],
        keycloak: NamedDependency[KeycloakAdmin],
    ) -> TenantOut:
        """Suspend an active tenant: its Keycloak organization is disabled, its data kept."""
        await services.suspend_or_reactivate(db_session, keycloak, tenant, TenantStatus.suspended, data.reason)
        return TenantOut.of(tenant)

    @post("/{ref:str}/reactivate", status_code=HTTP_200_OK, dependencies=ADMINISTERED, access=epci_admin("EPCI admin"))
    async def reactivate(
        self,
        data: JSONBody[StatusChangeIn],
        tenant: NamedDependency[Tenant],
        db_session: NamedDependency[AsyncSession],
        keycloak: NamedDependency[KeycloakAdmin],
    ) -> TenantOut:
        """Bring a suspended tenant back: its Keycloak organization is enabled again."""
        await services.suspend_or_reactivate(db_session, keycloak, tenant, TenantStatus.active, data.reason)
        return TenantOut.of(tenant)
