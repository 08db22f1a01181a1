"""Application factory of the ingestion service."""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ControllerRouterHandler

from socle_core.app import create_service_app
from socle_ingestion.config import IngestionSettings

#: The service's routes, each with its declared access (read by the isolation catalogue too).
ROUTE_HANDLERS: list[ControllerRouterHandler] = []


def create_app(settings: IngestionSettings | None = None) -> Litestar:
    settings = settings or IngestionSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=ROUTE_HANDLERS,
        title="Socle ingestion",
        description="Device registry and every way readings come in: HTTP batch, LoRaWAN webhooks, MQTT.",
    )
