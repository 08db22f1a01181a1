"""Application factory of the billing service."""

from __future__ import annotations

from litestar import Litestar

from socle_billing.config import BillingSettings
from socle_billing.domain.metering_accounts.controllers import MeteringAccountController
from socle_billing.domain.metering_accounts.services import CONSTRAINTS
from socle_core.app import create_service_app


def create_app(settings: BillingSettings | None = None) -> Litestar:
    settings = settings or BillingSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=[MeteringAccountController],
        title="Socle billing",
        description="Usage metering, allocation key and statements per commune.",
        constraints=CONSTRAINTS,
    )
