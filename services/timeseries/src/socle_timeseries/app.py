"""Application factory of the timeseries service."""

from __future__ import annotations

from litestar import Litestar

from socle_core.app import create_service_app
from socle_timeseries.config import TimeseriesSettings


def create_app(settings: TimeseriesSettings | None = None) -> Litestar:
    settings = settings or TimeseriesSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=[],
        title="Socle timeseries",
        description="Storage and queries of readings, exports and open data.",
    )
