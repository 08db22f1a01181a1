"""Settings of the tenancy service (environment prefix ``SOCLE_TENANCY_``)."""

from __future__ import annotations

from typing import ClassVar

from socle_core.settings import ServiceSettings, service_config


class TenancySettings(ServiceSettings):
    model_config = service_config("SOCLE_TENANCY_")
    service_name: ClassVar[str] = "tenancy"
