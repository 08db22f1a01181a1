"""``POST /v1/audit-feed/sync``: import Keycloak's events into the audit log now, not at the next tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import structlog
from litestar import Controller, Litestar, Request, post
from litestar.datastructures import State
from sqlalchemy.exc import SQLAlchemyError

from socle_core.auth import Principal
from socle_core.errors import ServiceUnavailable
from socle_identity.config import IdentitySettings
from socle_identity.domain.audit_feed.schemas import AuditFeedReport
from socle_identity.domain.audit_feed.services import AuditFeed
from socle_identity.domain.service_accounts.services import keycloak_problems
from socle_identity.keycloak import KeycloakError

log = structlog.get_logger("socle.identity.audit_feed")

#: Realm roles that may trigger an import (the platform's own client may too).
AUDIT_FEED_ROLES = ("operator",)


class AuditFeedController(Controller):
    path = "/v1/audit-feed"
    tags = ["audit"]

    @post("/sync", status_code=200, summary="Import Keycloak's login, token and admin events into the audit log")
    async def sync(self, request: Request[Principal, Any, Any], state: State) -> AuditFeedReport:
        principal = request.user
        settings: IdentitySettings = state.settings
        if not (principal.is_service_account and principal.client_id == settings.keycloak_client_id):
            principal.require_role(*AUDIT_FEED_ROLES)
        feed: AuditFeed | None = state.get("audit_feed")
        if feed is None:
            raise ServiceUnavailable(
                "the identity service cannot read Keycloak's events: set SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET"
            )
        with keycloak_problems():
            return await feed.run()


def audit_feed_lifespan(settings: IdentitySettings) -> Any:
    """The importer, and its periodic task when an interval is set."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        keycloak = app.state.get("keycloak")
        if keycloak is None:
            app.state.audit_feed = None
            yield
            return
        feed = AuditFeed(
            keycloak,
            app.state.db_session_maker,
            page_size=settings.audit_feed_page_size,
            overlap_seconds=settings.audit_feed_overlap_seconds,
            lookback_seconds=settings.audit_feed_lookback_seconds,
        )
        app.state.audit_feed = feed
        task = None
        if settings.audit_feed_interval_seconds > 0:
            task = asyncio.create_task(_every(settings.audit_feed_interval_seconds, feed))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    return lifespan


async def _every(interval: float, feed: AuditFeed) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await feed.run()
        except (KeycloakError, SQLAlchemyError) as exc:  # the next tick resumes from the cursor
            log.error("audit_feed_run_failed", error=str(exc))
        except Exception:  # a bug must not stop the feed for good: log it loudly, retry next tick
            log.exception("audit_feed_run_crashed")
