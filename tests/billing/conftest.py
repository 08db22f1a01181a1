"""The billing service's real app on the real PostgreSQL and Keycloak, and tokens per role."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from socle_billing.app import create_app
from socle_billing.config import BillingSettings
from tests.support.apps import settings_kwargs
from tests.support.keycloak_admin import ClientCredentials
from tests.support.registry import register_tenant


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


def corsican_commune() -> tuple[uuid.UUID, str]:
    """A registered tenant id and a valid commune key no tenancy test onboards (Corse-du-Sud / Haute-Corse codes)."""
    tenant_id, key = uuid.uuid4(), f"commune-2{random.choice('AB')}{random.randint(0, 999):03d}"
    register_tenant(tenant_id, key)
    return tenant_id, key
