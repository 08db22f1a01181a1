"""Building a real service app against the test servers."""

from __future__ import annotations

from typing import Any

from socle_devstack.keycloak import KeycloakServer
from socle_devstack.stack import Database


def settings_kwargs(service: str, database: Database, keycloak: KeycloakServer, **overrides: Any) -> dict[str, Any]:
    return {
        "environment": "test",
        "database_url": database.url(service, "app"),
        "migration_database_url": database.url(service, "owner"),
        "oidc_issuer": keycloak.issuer,
        "log_json": True,
        **overrides,
    }
