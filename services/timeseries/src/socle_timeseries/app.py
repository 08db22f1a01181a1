"""Application factory of the timeseries service."""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ControllerRouterHandler

from socle_core.app import create_service_app
from socle_timeseries.config import TimeseriesSettings

#: The service's routes, each with its declared access (read by the isolation catalogue too).
ROUTE_HANDLERS: list[ControllerRouterHandler] = []


def create_app(settings: TimeseriesSettings | None = None) -> Litestar:
    settings = settings or TimeseriesSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=ROUTE_HANDLERS,
        title="Socle timeseries",
        description="Storage and queries of readings, exports and open data.",
    )
