"""HTTP API of the onboarding workflow: one idempotent command per tenant, safe to retry."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from socle_core.auth import Principal
from socle_reference import ReferenceCatalogue
from socle_tenancy.domain.access import epci_admin, require_epci_admin
from socle_tenancy.domain.onboarding.schemas import OnboardingIn, OnboardingOut, StepOut
from socle_tenancy.domain.onboarding.services import OnboardingWorkflow, commune_draft, epci_draft, is_completed
from socle_tenancy.domain.tenants.schemas import TenantOut


def _out(result: tuple[Any, list[Any]]) -> OnboardingOut:
    tenant, steps = result
    return OnboardingOut(
        tenant=TenantOut.of(tenant), completed=is_completed(steps), steps=[StepOut.of(s) for s in steps]
    )


class OnboardingController(Controller):
    """No request transaction here: the workflow commits each step itself (see its module)."""

    tags = ["onboarding"]

    @post("/v1/tenants/{ref:str}/onboarding", status_code=HTTP_200_OK, access=epci_admin("EPCI admin"))
    async def onboard_commune(
        self,
        ref: FromPath[str],
        request: Request[Principal, Any, Any],
        workflow: NamedDependency[OnboardingWorkflow],
        catalogue: NamedDependency[ReferenceCatalogue],
        data: JSONBody[OnboardingIn | None] = None,
    ) -> OnboardingOut:
        """Onboard a member commune by INSEE code, or resume its onboarding where it stopped."""
        draft, epci_siren = await commune_draft(workflow.session_maker, catalogue, ref)
        require_epci_admin(request.user, epci_siren)
        return _out(await workflow.run(draft, data or OnboardingIn()))

    @post("/v1/epcis/{siren:str}/onboarding", status_code=HTTP_200_OK, access=epci_admin("EPCI admin"))
    async def onboard_epci(
        self,
        siren: FromPath[str],
        request: Request[Principal, Any, Any],
        workflow: NamedDependency[OnboardingWorkflow],
        data: JSONBody[OnboardingIn | None] = None,
    ) -> OnboardingOut:
        """Onboard the registered EPCI itself as a tenant (it owns data of its own competences)."""
        require_epci_admin(request.user, siren)
        draft = await epci_draft(workflow.session_maker, siren)
        return _out(await workflow.run(draft, data or OnboardingIn()))
