"""Settings of the billing service (environment prefix ``SOCLE_BILLING_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from socle_core.settings import ServiceSettings, service_config


class BillingSettings(ServiceSettings):
    model_config = service_config("SOCLE_BILLING_")
    service_name: ClassVar[str] = "billing"

    platform_client_id: str = Field(
        default="socle-platform",
        min_length=1,
        description="Keycloak client whose service account opens metering accounts during onboarding.",
    )
