"""``POST /v1/invitations/sync``: give accepted invitations their membership and role now."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State

from socle_core.auth import Principal
from socle_core.keycloak_admin import keycloak_problems
from socle_identity.config import IdentitySettings
from socle_identity.domain.invitations.schemas import InvitationReport
from socle_identity.domain.invitations.services import InvitationSync
from socle_identity.jobs import job_lifespan, job_of, require_platform_caller


class InvitationController(Controller):
    path = "/v1/invitations"
    tags = ["members"]

    @post("/sync", status_code=200, summary="Give accepted invitations their membership and role, expire the others")
    async def sync(self, request: Request[Principal, Any, Any], state: State) -> InvitationReport:
        require_platform_caller(request.user, state.settings)
        job: InvitationSync = job_of(state, "invitations", "manage Keycloak")
        with keycloak_problems():
            return await job.run()


def invitations_lifespan(settings: IdentitySettings) -> Any:
    """The invitation job, and its periodic task when an interval is set."""
    return job_lifespan(
        "invitations",
        lambda keycloak, app: InvitationSync(keycloak, app.state.db_session_maker),
        settings.invitation_sync_interval_seconds,
    )
