"""``POST /v1/audit-feed/sync``: import Keycloak's events into the audit log now, not at the next tick."""

from __future__ import annotations

from litestar import Controller, post
from litestar.datastructures import State

from socle_core.keycloak_admin import keycloak_problems
from socle_identity.domain.audit_feed.schemas import AuditFeedReport
from socle_identity.domain.audit_feed.services import AuditFeed
from socle_identity.jobs import job_of, platform_caller


class AuditFeedController(Controller):
    path = "/v1/audit-feed"
    tags = ["audit"]

    @post(
        "/sync",
        status_code=200,
        summary="Import Keycloak's login, token and admin events into the audit log",
        access=platform_caller("operator or the platform client"),
    )
    async def sync(self, state: State) -> AuditFeedReport:
        feed: AuditFeed = job_of(state, "audit_feed", "lire les événements de Keycloak")
        with keycloak_problems():
            return await feed.run()
