"""Application factory of the tenancy service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress

import httpx
import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from socle_core.app import create_service_app
from socle_reference import ReferenceCatalogue, default_catalogue
from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.audit.controllers import AuditController
from socle_tenancy.domain.audit.heads import HeadPublisher
from socle_tenancy.domain.audit.signing import HeadSigner, check_key
from socle_tenancy.domain.grants.controllers import GrantController
from socle_tenancy.domain.isolation.controllers import IsolationReportController
from socle_tenancy.domain.offboarding.controllers import OffboardingController, TenantImportController
from socle_tenancy.domain.onboarding.billing import BillingClient
from socle_tenancy.domain.onboarding.controllers import OnboardingController
from socle_tenancy.domain.onboarding.services import OnboardingWorkflow
from socle_tenancy.domain.tenants.controllers import EpciController, TenantController
from socle_tenancy.keycloak import KeycloakAdmin

log = structlog.get_logger("socle.tenancy")

#: The service's routes, each with its declared access (read by the isolation catalogue too).
ROUTE_HANDLERS: list[ControllerRouterHandler] = [
    EpciController,
    TenantController,
    OnboardingController,
    OffboardingController,
    TenantImportController,
    IsolationReportController,
    AuditController,
    GrantController,
]


def create_app(
    settings: TenancySettings | None = None, *, keycloak_transport: httpx.AsyncBaseTransport | None = None
) -> Litestar:
    """``keycloak_transport`` replaces the network under the Keycloak admin client (fault-injection tests)."""
    settings = settings or TenancySettings()  # type: ignore[call-arg]

    @asynccontextmanager
    async def onboarding(app: Litestar) -> AsyncIterator[None]:
        keycloak = KeycloakAdmin(settings, transport=keycloak_transport)
        billing = BillingClient(settings, keycloak.access_token)
        app.state.keycloak = keycloak
        app.state.onboarding = OnboardingWorkflow(
            app.state.db_engine, app.state.db_session_maker, keycloak, settings, billing
        )
        try:
            yield
        finally:
            await billing.aclose()
            await keycloak.aclose()

    return create_service_app(
        settings,
        route_handlers=ROUTE_HANDLERS,
        title="Socle tenancy",
        description=(
            "The tenant registry (EPCI and member communes), onboarding, data-sharing grants, "
            "audit log and isolation evidence."
        ),
        lifespan=[onboarding, _head_publication(settings)],
        dependencies={
            "catalogue": Provide(_catalogue, sync_to_thread=False),
            "workflow": Provide(_workflow, sync_to_thread=False),
            "keycloak": Provide(_keycloak, sync_to_thread=False),
        },
    )


def _head_publication(settings: TenancySettings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Publish the signed chain heads every interval, when a directory, a key and an interval are set."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        directory, interval = settings.audit_heads_dir, settings.audit_heads_interval_seconds
        if directory is None or interval <= 0:
            yield
            return
        signer = HeadSigner(check_key(settings.audit_heads_signing_key, settings.environment))
        publisher = HeadPublisher(app.state.db_session_maker, signer, directory)
        task = asyncio.create_task(_every(interval, publisher))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    return lifespan


async def _every(interval: float, publisher: HeadPublisher) -> None:
    """First at start-up, then every interval; a failed run is logged and the next one catches up."""
    while True:
        try:
            await publisher.run()
        except Exception:  # a database or disk failure must not stop the publication for good
            log.exception("audit_heads_publication_failed", directory=str(publisher.directory))
        await asyncio.sleep(interval)


def _catalogue() -> ReferenceCatalogue:
    return default_catalogue()


def _workflow(state: State) -> OnboardingWorkflow:
    return state.onboarding  # type: ignore[no-any-return]


def _keycloak(state: State) -> KeycloakAdmin:
    return state.keycloak  # type: ignore[no-any-return]
