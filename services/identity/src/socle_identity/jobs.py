"""Jobs the identity service runs on demand and in the background (placement, audit feed).

Both read Keycloak's event store and need the admin client; both may be triggered only by
the operator or by the platform's own client. A failed tick is logged and the next one
resumes: a job's state lives in Keycloak or in the database, never in the task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

import structlog
from litestar import Litestar
from sqlalchemy.exc import SQLAlchemyError

from socle_core.auth import Principal
from socle_core.errors import ServiceUnavailable
from socle_identity.config import IdentitySettings
from socle_identity.keycloak import KeycloakAdminClient, KeycloakError

log = structlog.get_logger("socle.identity.jobs")

#: Realm roles that may trigger platform jobs (the platform's own client may too).
PLATFORM_ROLES = ("operator",)


class Job(Protocol):
    async def run(self) -> Any: ...


def require_platform_caller(principal: Principal, settings: IdentitySettings) -> None:
    """The operator, or the platform's own client (tenancy's workflows, ``socle-tenants``)."""
    if principal.is_service_account and principal.client_id == settings.keycloak_client_id:
        return
    principal.require_role(*PLATFORM_ROLES)


def job_of(state: Any, key: str, what: str) -> Any:
    """The job kept in the app state under ``key``, or a 503 saying which setting is missing."""
    job = state.get(key)
    if job is None:
        raise ServiceUnavailable(
            f"le service d'identité ne peut pas {what} : définissez SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET"
        )
    return job


def job_lifespan(
    key: str, build: Callable[[KeycloakAdminClient, Litestar], Job], interval_seconds: float
) -> Callable[[Litestar], Any]:
    """Keep the job in ``app.state[key]`` (None without Keycloak access) and run it every interval (0 = never)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        keycloak = app.state.get("keycloak")
        if keycloak is None:
            app.state[key] = None
            yield
            return
        job = build(keycloak, app)
        app.state[key] = job
        task = asyncio.create_task(_every(interval_seconds, job, key)) if interval_seconds > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    return lifespan


async def _every(interval: float, job: Job, name: str) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await job.run()
        except (KeycloakError, SQLAlchemyError) as exc:  # the next tick resumes
            log.error("job_run_failed", job=name, error=str(exc))
        except Exception:  # a bug must not stop the job for good: log it loudly, retry next tick
            log.exception("job_run_crashed", job=name)
