"""Settings of the console (environment prefix ``SOCLE_CONSOLE_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from socle_core.settings import ServiceSettings, service_config


class ConsoleSettings(ServiceSettings):
    model_config = service_config("SOCLE_CONSOLE_")
    service_name: ClassVar[str] = "console"

    service_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Base URLs of the other services, e.g. {"tenancy": "http://tenancy:8000"}',
    )
