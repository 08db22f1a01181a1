"""``POST /v1/placements/sync``: place ProConnect agents in their commune now, not at the next tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import structlog
from litestar import Controller, Litestar, Request, post
from litestar.datastructures import State

from socle_core.auth import Principal
from socle_core.errors import ServiceUnavailable
from socle_identity.config import IdentitySettings
from socle_identity.domain.placement.schemas import PlacementReport
from socle_identity.domain.placement.services import PlacementSync
from socle_identity.domain.service_accounts.services import keycloak_problems
from socle_identity.keycloak import KeycloakError

log = structlog.get_logger("socle.identity.placement")

#: Realm roles that may trigger a placement run.
PLACEMENT_ROLES = ("operator",)


class PlacementController(Controller):
    path = "/v1/placements"
    tags = ["identity"]

    @post("/sync", status_code=200, summary="Place agents brokered from ProConnect in their commune, by SIRET")
    async def sync(self, request: Request[Principal, Any, Any], state: State) -> PlacementReport:
        principal = request.user
        settings: IdentitySettings = state.settings
        is_platform = principal.is_service_account and principal.client_id == settings.keycloak_client_id
        if not is_platform:
            principal.require_role(*PLACEMENT_ROLES)
        placement: PlacementSync | None = state.get("placement")
        if placement is None:
            raise ServiceUnavailable(
                "the identity service cannot manage Keycloak: set SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET"
            )
        with keycloak_problems():
            return await placement.run()


def placement_lifespan(settings: IdentitySettings) -> Any:
    """The placement runner, and its periodic task when an interval is set."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        keycloak = app.state.get("keycloak")
        if keycloak is None:
            app.state.placement = None
            yield
            return
        placement = PlacementSync(
            keycloak, idp_alias=settings.proconnect_alias, lookback_seconds=settings.placement_lookback_seconds
        )
        app.state.placement = placement
        task = None
        if settings.placement_sync_interval_seconds > 0:
            task = asyncio.create_task(_every(settings.placement_sync_interval_seconds, placement))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    return lifespan


async def _every(interval: float, placement: PlacementSync) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await placement.run()
        except KeycloakError as exc:  # the next tick retries; the service keeps serving meanwhile
            log.error("placement_run_failed", error=str(exc))
