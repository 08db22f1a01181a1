"""``POST /v1/placements/sync``: place ProConnect agents in their commune now, not at the next tick."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State

from socle_core.auth import Principal
from socle_core.keycloak_admin import keycloak_problems
from socle_identity.config import IdentitySettings
from socle_identity.domain.placement.schemas import PlacementReport
from socle_identity.domain.placement.services import PlacementSync
from socle_identity.jobs import job_lifespan, job_of, require_platform_caller


class PlacementController(Controller):
    path = "/v1/placements"
    tags = ["identity"]

    @post("/sync", status_code=200, summary="Place agents brokered from ProConnect in their commune, by SIRET")
    async def sync(self, request: Request[Principal, Any, Any], state: State) -> PlacementReport:
        require_platform_caller(request.user, state.settings)
        placement: PlacementSync = job_of(state, "placement", "manage Keycloak")
        with keycloak_problems():
            return await placement.run()


def placement_lifespan(settings: IdentitySettings) -> Any:
    """The placement runner, and its periodic task when an interval is set."""
    return job_lifespan(
        "placement",
        lambda keycloak, app: PlacementSync(
            keycloak, idp_alias=settings.proconnect_alias, lookback_seconds=settings.placement_lookback_seconds
        ),
        settings.placement_sync_interval_seconds,
    )
