"""Settings of the billing service (environment prefix ``SOCLE_BILLING_``)."""

from __future__ import annotations

from typing import ClassVar

from socle_core.settings import ServiceSettings, service_config


class BillingSettings(ServiceSettings):
    model_config = service_config("SOCLE_BILLING_")
    service_name: ClassVar[str] = "billing"
