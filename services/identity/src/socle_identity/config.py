"""Settings of the identity service (environment prefix ``SOCLE_IDENTITY_``)."""

from __future__ import annotations

from typing import ClassVar

from socle_core.settings import ServiceSettings, service_config


class IdentitySettings(ServiceSettings):
    model_config = service_config("SOCLE_IDENTITY_")
    service_name: ClassVar[str] = "identity"
