"""The billing service's real app on the real PostgreSQL and Keycloak, and tokens per role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from socle_billing.app import create_app
from socle_billing.config import BillingSettings
from tests.support.apps import settings_kwargs
from tests.support.fixtures import registered_commune
from tests.support.keycloak_admin import ClientCredentials


@pytest.fixture
async def billing(clean_socle_env, database, keycloak) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(create_app(BillingSettings(**settings_kwargs("billing", database, keycloak)))) as client:
        yield client


def bearer(kc_admin: Any, roles: tuple[str, ...], organization: tuple[str, uuid.UUID] | None = None) -> dict[str, str]:
    client = kc_admin.create_client(roles=roles, organization=organization)
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


@pytest.fixture(scope="session")
def platform(kc_admin, credentials) -> dict[str, str]:
    """Headers of the socle-platform service account, as tenancy's onboarding calls billing."""
    token = kc_admin.token(ClientCredentials("socle-platform", credentials["platform_client"], ""))
    return {"Authorization": f"Bearer {token['access_token']}"}


@pytest.fixture(scope="session")
def operator(kc_admin) -> dict[str, str]:
    return bearer(kc_admin, ("operator",))


@pytest.fixture(scope="session")
def auditor(kc_admin) -> dict[str, str]:
    return bearer(kc_admin, ("auditor",))


async def commune_of_registry(database: Any) -> tuple[uuid.UUID, str]:
    """Id and key of a commune of the registry no tenancy test onboards (billing opens accounts only there)."""
    tenant = await registered_commune(database)
    return tenant.id, tenant.alias
