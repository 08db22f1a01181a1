"""Settings of the ingestion service (environment prefix ``SOCLE_INGESTION_``)."""

from __future__ import annotations

from typing import ClassVar

from socle_core.settings import ServiceSettings, service_config


class IngestionSettings(ServiceSettings):
    model_config = service_config("SOCLE_INGESTION_")
    service_name: ClassVar[str] = "ingestion"
