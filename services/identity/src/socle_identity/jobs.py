"""Jobs the identity service runs on demand and in the background (placement, audit feed, invitations).

They read Keycloak and need the admin client; they may be triggered only by the operator or
by the platform's own client. In the background each runs on one replica at a time, under
its lock (``socle_core.jobs``), in the service process or in ``python -m socle_identity.worker``.
A failed run is logged and the next one resumes: a job's state lives in Keycloak or in the
database, never in the task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core import access
from socle_core.errors import ServiceUnavailable
from socle_core.jobs import ScheduledJob, running_jobs
from socle_core.roles import Role
from socle_identity.config import IdentitySettings
from socle_identity.domain.audit_feed.services import AuditFeed
from socle_identity.domain.invitations.services import InvitationSync
from socle_identity.domain.placement.services import PlacementSync
from socle_identity.keycloak import KeycloakAdminClient

#: App-state keys of the jobs, as their endpoints look them up.
JOB_KEYS = ("placement", "audit_feed", "invitations")
#: ``application_name`` of the job locks' connections, as pg_stat_activity shows them.
LOCKS = "socle-identity-jobs"


def platform_caller(why: str) -> access.Access:
    """The operator, or the platform's own client (tenancy's workflows, ``socle-tenants``)."""
    return access.platform(Role.OPERATOR, platform_client=True, why=why)


def job_of(state: Any, key: str, what: str) -> Any:
    """The job kept in the app state under ``key``, or a 503 saying which setting is missing."""
    job = state.get(key)
    if job is None:
        raise ServiceUnavailable(
            f"le service d'identité ne peut pas {what} : définissez SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET"
        )
    return job


class Job(Protocol):
    async def run(self) -> Any: ...


def build_jobs(
    settings: IdentitySettings, keycloak: KeycloakAdminClient, maker: async_sessionmaker[AsyncSession]
) -> dict[str, Job]:
    """The identity service's jobs, by the app-state key their on-demand endpoint finds them under."""
    return {
        "placement": PlacementSync(
            keycloak, idp_alias=settings.proconnect_alias, lookback_seconds=settings.placement_lookback_seconds
        ),
        "audit_feed": AuditFeed(
            keycloak,
            maker,
            page_size=settings.audit_feed_page_size,
            overlap_seconds=settings.audit_feed_overlap_seconds,
            lookback_seconds=settings.audit_feed_lookback_seconds,
        ),
        "invitations": InvitationSync(keycloak, maker),
    }


def schedule(settings: IdentitySettings, jobs: dict[str, Job]) -> list[ScheduledJob]:
    """The jobs that run in the background, each under its lock (an interval of 0 leaves it to its endpoint)."""
    intervals = {
        "placement": settings.placement_sync_interval_seconds,
        "audit_feed": settings.audit_feed_interval_seconds,
        "invitations": settings.invitation_sync_interval_seconds,
    }
    return [ScheduledJob(f"identity.{key}", jobs[key].run, intervals[key]) for key in JOB_KEYS if intervals[key] > 0]


def jobs_lifespan(settings: IdentitySettings) -> Callable[[Litestar], Any]:
    """Keep each job in ``app.state[key]`` (None without Keycloak access) for its endpoint, and run them.

    In the service process unless ``jobs_in_process`` is off (a separate worker runs them,
    ``python -m socle_identity.worker``); each runs on one replica at a time either way.
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        keycloak = app.state.get("keycloak")
        if keycloak is None:
            app.state.update(dict.fromkeys(JOB_KEYS))
            yield
            return
        jobs = build_jobs(settings, keycloak, app.state.db_session_maker)
        app.state.update(jobs)
        background = schedule(settings, jobs) if settings.jobs_in_process else []
        async with running_jobs(
            app.state.db_engine, background, standby_seconds=settings.jobs_standby_seconds, application_name=LOCKS
        ):
            yield

    return lifespan
