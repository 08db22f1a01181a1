"""Application factory of the identity service."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from socle_core.app import create_service_app
from socle_identity.config import IdentitySettings
from socle_identity.deps import keycloak_lifespan, provide_keycloak
from socle_identity.domain.audit_feed.controllers import AuditFeedController
from socle_identity.domain.invitations.controllers import InvitationController
from socle_identity.domain.me.controllers import MeController
from socle_identity.domain.members.controllers import MemberController
from socle_identity.domain.organizations.controllers import OrganizationController
from socle_identity.domain.placement.controllers import PlacementController
from socle_identity.domain.service_accounts.controllers import ServiceAccountController
from socle_identity.jobs import jobs_lifespan

#: The service's routes, each with its declared access (read by the isolation catalogue too).
ROUTE_HANDLERS: list[ControllerRouterHandler] = [
    MeController,
    ServiceAccountController,
    MemberController,
    InvitationController,
    OrganizationController,
    PlacementController,
    AuditFeedController,
]


def create_app(settings: IdentitySettings | None = None) -> Litestar:
    settings = settings or IdentitySettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=ROUTE_HANDLERS,
        title="Socle identity",
        description="Keycloak organizations per tenant, roles, service accounts, login, ProConnect placement "
        "and the audit feed of Keycloak's events.",
        lifespan=[
            keycloak_lifespan(settings),
            jobs_lifespan(settings),
        ],
        dependencies={"keycloak": Provide(provide_keycloak, sync_to_thread=False)},
        platform_client_id=settings.keycloak_client_id,
    )
