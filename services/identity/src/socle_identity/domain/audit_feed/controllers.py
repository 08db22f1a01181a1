"""``POST /v1/audit-feed/sync``: import Keycloak's events into the audit log now, not at the next tick."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State

from socle_core.auth import Principal
from socle_core.keycloak_admin import keycloak_problems
from socle_identity.config import IdentitySettings
from socle_identity.domain.audit_feed.schemas import AuditFeedReport
from socle_identity.domain.audit_feed.services import AuditFeed
from socle_identity.jobs import job_lifespan, job_of, require_platform_caller


class AuditFeedController(Controller):
    path = "/v1/audit-feed"
    tags = ["audit"]

    @post("/sync", status_code=200, summary="Import Keycloak's login, token and admin events into the audit log")
    async def sync(self, request: Request[Principal, Any, Any], state: State) -> AuditFeedReport:
        require_platform_caller(request.user, state.settings)
        feed: AuditFeed = job_of(state, "audit_feed", "read Keycloak's events")
        with keycloak_problems():
            return await feed.run()


def audit_feed_lifespan(settings: IdentitySettings) -> Any:
    """The importer, and its periodic task when an interval is set."""
    return job_lifespan(
        "audit_feed",
        lambda keycloak, app: AuditFeed(
            keycloak,
            app.state.db_session_maker,
            page_size=settings.audit_feed_page_size,
            overlap_seconds=settings.audit_feed_overlap_seconds,
            lookback_seconds=settings.audit_feed_lookback_seconds,
        ),
        settings.audit_feed_interval_seconds,
    )
