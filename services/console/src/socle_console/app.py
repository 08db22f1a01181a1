"""Application factory of the console."""

from __future__ import annotations

from litestar import Litestar

from socle_console.config import ConsoleSettings
from socle_console.domain.status.controllers import StatusController
from socle_core.app import create_service_app
from socle_core.auth import PUBLIC_PATHS


def create_app(settings: ConsoleSettings | None = None) -> Litestar:
    settings = settings or ConsoleSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=[StatusController],
        title="Socle console",
        description="The web console for every role.",
        public_paths=[PUBLIC_PATHS, r"^/$"],
    )
