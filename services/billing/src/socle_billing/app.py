"""Application factory of the billing service."""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ControllerRouterHandler

from socle_billing.config import BillingSettings
from socle_billing.domain.metering_accounts.controllers import MeteringAccountController
from socle_billing.domain.metering_accounts.services import CONSTRAINTS
from socle_core.app import create_service_app

#: The service's routes, each with its declared access (read by the isolation catalogue too).
ROUTE_HANDLERS: list[ControllerRouterHandler] = [MeteringAccountController]


def create_app(settings: BillingSettings | None = None) -> Litestar:
    settings = settings or BillingSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=ROUTE_HANDLERS,
        title="Socle billing",
        description="Usage metering, allocation key and statements per commune.",
        platform_client_id=settings.platform_client_id,
        constraints=CONSTRAINTS,
    )
