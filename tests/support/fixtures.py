"""Fixtures shared by every test module, on top of the servers of ``tests/conftest.py``."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_devstack.keycloak import KeycloakServer
from socle_devstack.stack import Database
from tests.support.apps import served, settings_kwargs
from tests.support.keycloak_admin import KeycloakAdmin
from tests.support.registry import register_tenant


@pytest.fixture(scope="session")
def kc_admin(keycloak: KeycloakServer) -> KeycloakAdmin:
    return KeycloakAdmin(keycloak)


@dataclass(frozen=True)
class TestTenant:
    alias: str
    id: uuid.UUID


def new_tenant(prefix: str = "commune") -> TestTenant:
    """A tenant for tokens and organizations, already in the tenant registry when a database is up."""
    tenant = TestTenant(f"{prefix}-{uuid.uuid4().hex[:8]}", uuid.uuid4())
    register_tenant(tenant.id, tenant.alias)
    return tenant


async def registered_commune(database: Database, status: str = "active") -> TestTenant:
    """A commune row of the tenant registry (inserted as tenancy's owner), for services that check it exists.

    Its key is ``commune-9<A|B><nnn>``, of a department that does not exist: no test onboards it,
    and it sorts after every real commune (the isolation report samples the registry by key).
    Its parent is itself: it is no member of the deployment's EPCI.
    """
    connection = await asyncpg.connect(database.url("tenancy", "owner").replace("+asyncpg", "", 1))
    try:
        while True:
            tenant_id, code = uuid.uuid4(), f"9{random.choice('AB')}{random.randrange(1000):03d}"
            try:
                await connection.execute(
                    "INSERT INTO tenancy.tenants (id, kind, key, name, insee_code, parent_id, status) "
                    "VALUES ($1, 'commune', $2, $3, $4, $1, $5)",
                    tenant_id,
                    f"commune-{code}",
                    f"Commune d'essai {code}",
                    code,
                    status,
                )
            except asyncpg.UniqueViolationError:  # that code is taken already: draw another
                continue
            return TestTenant(f"commune-{code}", tenant_id)
    finally:
        await connection.close()


@pytest.fixture
def tenant_a() -> TestTenant:
    return new_tenant()


@pytest.fixture
def tenant_b() -> TestTenant:
    return new_tenant()


@pytest.fixture(scope="session")
async def owner_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """The ingestion schema owner (for arranging rows the app role must not see)."""
    engine = create_async_engine(database.url("ingestion", "owner"))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """The ingestion application role, as the service connects."""
    engine = create_async_engine(database.url("ingestion", "app"), pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def billing_url(database: Database, keycloak: KeycloakServer) -> Iterator[str]:
    """The real billing service over HTTP for the whole session: onboarding opens metering accounts there."""
    from socle_billing.app import create_app
    from socle_billing.config import BillingSettings

    with pytest.MonkeyPatch.context() as patch:  # strict settings: no SOCLE_* variable of the shell may leak in
        for key in [k for k in os.environ if k.upper().startswith("SOCLE_")]:
            patch.delenv(key)
        settings = BillingSettings(**settings_kwargs("billing", database, keycloak))
    with served(create_app(settings)) as url:
        yield url
