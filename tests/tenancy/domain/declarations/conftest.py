"""The tenancy app served over HTTP, and the environment the ``socle-tenants`` command reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from socle_tenancy.app import create_app
from tests.tenancy.domain.declarations.serving import serve


@pytest.fixture
def tenancy_url(tenancy_settings) -> Iterator[str]:
    with serve(create_app(tenancy_settings())) as url:
        yield url


@pytest.fixture
def cli_env(tenancy_url, keycloak, credentials) -> dict[str, str]:
    """As the platform client (automation): its secret comes from the environment, never from the command line."""
    return {
        "SOCLE_TENANTS_API": tenancy_url,
        "SOCLE_TENANTS_ISSUER": keycloak.issuer,
        "SOCLE_TENANTS_AUTH": "client-credentials",
        "SOCLE_TENANTS_CLIENT_SECRET": credentials["platform_client"],
    }
