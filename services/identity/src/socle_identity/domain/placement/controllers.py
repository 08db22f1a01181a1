"""``POST /v1/placements/sync``: place ProConnect agents in their commune now, not at the next tick."""

from __future__ import annotations

from litestar import Controller, post
from litestar.datastructures import State

from socle_core.keycloak_admin import keycloak_problems
from socle_identity.domain.placement.schemas import PlacementReport
from socle_identity.domain.placement.services import PlacementSync
from socle_identity.jobs import job_of, platform_caller


class PlacementController(Controller):
    path = "/v1/placements"
    tags = ["identity"]

    @post(
        "/sync",
        status_code=200,
        summary="Place agents brokered from ProConnect in their commune, by SIRET",
        access=platform_caller("operator or the platform client"),
    )
    async def sync(self, state: State) -> PlacementReport:
        placement: PlacementSync = job_of(state, "placement", "gérer Keycloak")
        with keycloak_problems():
            return await placement.run()
