"""Application factory of the tenancy service."""

from __future__ import annotations

from litestar import Litestar

from socle_core.app import create_service_app
from socle_tenancy.config import TenancySettings


def create_app(settings: TenancySettings | None = None) -> Litestar:
    settings = settings or TenancySettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=[],
        title="Socle tenancy",
        description=(
            "The tenant registry (EPCI and member communes), onboarding, data-sharing grants, "
            "audit log and isolation evidence."
        ),
    )
