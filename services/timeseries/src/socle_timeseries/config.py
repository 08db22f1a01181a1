"""Settings of the timeseries service (environment prefix ``SOCLE_TIMESERIES_``)."""

from __future__ import annotations

from typing import ClassVar

from socle_core.settings import ServiceSettings, service_config


class TimeseriesSettings(ServiceSettings):
    model_config = service_config("SOCLE_TIMESERIES_")
    service_name: ClassVar[str] = "timeseries"
