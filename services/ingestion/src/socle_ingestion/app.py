"""Application factory of the ingestion service."""

from __future__ import annotations

from litestar import Litestar

from socle_core.app import create_service_app
from socle_ingestion.config import IngestionSettings


def create_app(settings: IngestionSettings | None = None) -> Litestar:
    settings = settings or IngestionSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=[],
        title="Socle ingestion",
        description="Device registry and every way readings come in: HTTP batch, LoRaWAN webhooks, MQTT.",
    )
