"""The tenancy service's real app on the real PostgreSQL and Keycloak, and tokens per role.

The deployment's EPCI is the demo one (``tenants/demo/cc-pays-de-sommieres.json``): the
suite shares one database, and a deployment serves one EPCI.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from socle_devstack.stack import REPO_ROOT
from socle_reference.catalogue import MemberCommune, default_catalogue
from socle_tenancy.app import create_app
from socle_tenancy.config import TenancySettings
from tests.support.apps import settings_kwargs

DEMO = json.loads((REPO_ROOT / "tenants" / "demo" / "cc-pays-de-sommieres.json").read_text())
DEMO_SIREN = DEMO["epci"]["siren"]
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
#: The communes of the demo declaration onboarded as the demo (idempotently, by every test that wants the demo).
DEMO_ONBOARDED = ("30321", "30062", "30091")


class CommunePool:
    """The other member communes of the demo EPCI, each handed out once per session.

    Onboarding, suspending or offboarding a commune changes it for the rest of the session:
    a test that named a fixed INSEE code depended on no other test touching that commune, and
    on the order of the tests. A commune taken from here is touched by its taker only.
    """

    def __init__(self) -> None:
        members = default_catalogue().members(DEMO_SIREN)
        self._free = [m for m in members if m.insee not in DEMO_ONBOARDED]
        self.size = len(self._free)

    def take(self) -> MemberCommune:
        assert self._free, (
            f"the {self.size} member communes of the demo EPCI (but the demo's) are all taken: "
            "share one between tests that do not change it (a module-scoped fixture)"
        )
        return self._free.pop(0)


@pytest.fixture(scope="session")
def commune_pool() -> CommunePool:
    return CommunePool()


@pytest.fixture
def free_commune(commune_pool: CommunePool) -> MemberCommune:
    """A member commune of the demo EPCI no other test of the session touches."""
    return commune_pool.take()


@pytest.fixture(scope="session")
def untouched_commune(commune_pool: CommunePool) -> MemberCommune:
    """A member commune no test onboards: only refused onboardings and reads of absent tenants name it."""
    return commune_pool.take()


def first_admin(commune: MemberCommune) -> dict[str, Any]:
    """An onboarding request for ``commune``: its first admin and e-mail domain."""
    domain = f"mairie-{commune.insee}.test.socle.fr"
    return {"first_admin_email": f"dgs@{domain}", "email_domains": [domain]}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["type"] == f"urn:socle:problem:{slug}"
    assert body["status"] == status
    assert body["detail"]
    return dict(body)


@pytest.fixture
def tenancy_settings(clean_socle_env, database, keycloak, credentials, billing_url) -> Callable[..., TenancySettings]:
    """Tenancy on the test servers, opening metering accounts in the session's real billing service."""

    def make(**overrides: Any) -> TenancySettings:
        wanted = {"keycloak_client_secret": credentials["platform_client"], "billing_url": billing_url}
        return TenancySettings(**settings_kwargs("tenancy", database, keycloak, **(wanted | overrides)))

    return make


@pytest.fixture
async def tenancy(tenancy_settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(create_app(tenancy_settings())) as client:
        yield client


def _bearer(kc_admin, roles: tuple[str, ...], organization: tuple[str, Any] | None = None) -> dict[str, str]:
    """A fresh token per test: a token lives 5 minutes, a session of the suite much longer."""
    client = kc_admin.create_client(roles=roles, organization=organization)
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


@pytest.fixture
def operator(kc_admin) -> dict[str, str]:
    """Headers of a platform operator (realm role ``operator``, no tenant)."""
    return _bearer(kc_admin, ("operator",))


@pytest.fixture
def agent(kc_admin) -> dict[str, str]:
    """Headers of a commune agent: may not onboard anything."""
    return _bearer(kc_admin, ("commune-agent",), (f"commune-{uuid.uuid4().hex[:8]}", uuid.uuid4()))


@pytest.fixture
def other_epci_admin(kc_admin) -> dict[str, str]:
    """Headers of the admin of another EPCI than this deployment's."""
    return _bearer(kc_admin, ("epci-admin",), ("epci-243000643", uuid.uuid4()))


@pytest.fixture
async def demo_epci(tenancy, operator) -> dict[str, Any]:
    response = await tenancy.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def demo_commune(insee: str) -> dict[str, Any]:
    """The onboarding request of a commune of the demo declaration."""
    entry = next(c for c in DEMO["communes"] if c["insee"] == insee)
    body: dict[str, Any] = {"first_admin_email": entry["first_admin_email"], "email_domains": entry["email_domains"]}
    if "quotas" in entry:
        body["quotas"] = entry["quotas"]
    return body
