"""Access declared on the route: an app with an undeclared route is not built, and the table shows every rule."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import get

from socle_core.access import Authentication, UndeclaredAccess, declared_routes, tenant_own
from socle_core.app import create_service_app
from socle_core.roles import Role
from socle_identity.app import create_app
from socle_identity.config import IdentitySettings
from socle_ingestion.config import IngestionSettings
from tests.support.apps import settings_kwargs


@get("/v1/forgotten")
async def forgotten() -> None:
    """A route whose author forgot to say who may call it."""


@get("/v1/declared", access=tenant_own(Role.COMMUNE_AGENT, why="the caller's own commune"))
async def declared() -> None:
    """The same route, declared."""


def test_an_app_with_a_route_without_declared_access_is_not_built(
    clean_socle_env: Any, database: Any, keycloak: Any
) -> None:
    settings = IngestionSettings(**settings_kwargs("ingestion", database, keycloak))
    with pytest.raises(UndeclaredAccess, match="GET /v1/forgotten"):
        create_service_app(settings, [declared, forgotten], title="t", description="t")
    app = create_service_app(settings, [declared], title="t", description="t")
    assert [r.path for r in declared_routes(app) if r.path.startswith("/v1/")] == ["/v1/declared"]


def test_the_route_table_shows_each_routes_rule(clean_socle_env: Any, database: Any, keycloak: Any) -> None:
    app = create_app(IdentitySettings(**settings_kwargs("identity", database, keycloak)))
    table = {(r.method, r.path): r.access for r in declared_routes(app)}
    rotate = table[("POST", "/v1/service-accounts/{account_id:uuid}/rotate")]
    assert (rotate.scope, rotate.target, rotate.tenant_roles, rotate.roles) == (
        "tenant-resource",
        "service-account",
        frozenset({Role.COMMUNE_ADMIN}),
        frozenset(),
    )
    assert rotate.view == "/v1/service-accounts/{account_id:uuid}"
    sync = table[("POST", "/v1/placements/sync")]
    assert (sync.scope, sync.roles, sync.platform_client) == ("platform", frozenset({Role.OPERATOR}), True)
    assert table[("GET", "/v1/me")].anyone_authenticated
    assert table[("GET", "/health/live")].authentication is Authentication.NONE
    assert table[("GET", "/schema/openapi.json")].scope == "public"
    assert all(a.authentication is Authentication.BEARER for (_, p), a in table.items() if p.startswith("/v1/"))
