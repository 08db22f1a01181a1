"""``POST /v1/invitations/sync``: give accepted invitations their membership and role now."""

from __future__ import annotations

from litestar import Controller, post
from litestar.datastructures import State

from socle_core.keycloak_admin import keycloak_problems
from socle_identity.domain.invitations.schemas import InvitationReport
from socle_identity.domain.invitations.services import InvitationSync
from socle_identity.jobs import job_of, platform_caller


class InvitationController(Controller):
    path = "/v1/invitations"
    tags = ["members"]

    @post(
        "/sync",
        status_code=200,
        summary="Give accepted invitations their membership and role, expire the others",
        access=platform_caller("operator or the platform client"),
    )
    async def sync(self, state: State) -> InvitationReport:
        job: InvitationSync = job_of(state, "invitations", "gérer Keycloak")
        with keycloak_problems():
            return await job.run()
