"""Application factory of the console."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template import TemplateConfig
from litestar.types import ControllerRouterHandler

from socle_console.config import ConsoleSettings
from socle_console.deps import oidc_lifespan, provide_oidc
from socle_console.domain.auth.controllers import AuthController
from socle_console.domain.home.controllers import AgentController
from socle_console.domain.status.controllers import StatusController
from socle_core.app import create_service_app

#: The console's routes: its pages declare a session cookie (``deps.provide_agent``) or nothing, never a bearer token.
ROUTE_HANDLERS: list[ControllerRouterHandler] = [StatusController, AuthController, AgentController]


def create_app(settings: ConsoleSettings | None = None) -> Litestar:
    settings = settings or ConsoleSettings()  # type: ignore[call-arg]
    return create_service_app(
        settings,
        route_handlers=ROUTE_HANDLERS,
        title="Socle console",
        description="The web console for every role.",
        lifespan=[oidc_lifespan(settings)],
        dependencies={"oidc": Provide(provide_oidc, sync_to_thread=False)},
        template_config=TemplateConfig(directory=Path(__file__).with_name("templates"), engine=JinjaTemplateEngine),
    )
