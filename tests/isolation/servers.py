"""Real service apps served over HTTP on free ports, and what the isolation tests set up with them.

The isolation report calls the services like any client would, through their base URLs:
so the tests serve each app with uvicorn in a thread, against the real PostgreSQL and
Keycloak of the test session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar

from socle_devstack.keycloak import KeycloakServer
from socle_devstack.stack import SERVICES, Credentials, Database
from tests.support.apps import served, settings_kwargs
from tests.tenancy.conftest import DEMO_ONBOARDED, DEMO_SIREN, demo_commune

#: Three communes of the demo EPCI (tenants/demo/cc-pays-de-sommieres.json).
#: Serve an app on a free local port (lifespan included); yields its base URL.
serve = served


@contextmanager
def no_socle_environment() -> Iterator[None]:
    """Strict settings refuse unknown SOCLE_* variables: none may leak from the shell."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.upper().startswith("SOCLE_"):
                patch.delenv(key)
        yield


def create_app(
    service: str,
    database: Database,
    keycloak: KeycloakServer,
    credentials: Credentials,
    billing_url: str | None = None,
    **overrides: Any,
) -> Litestar:
    """The real app of a service, configured for the test servers (platform secret where it takes one).

    ``billing_url``: where tenancy's onboarding opens metering accounts (needed to onboard);
    ``overrides``: other settings of this service.
    """
    module = __import__(f"socle_{service}.app", fromlist=["create_app"])
    config = __import__(f"socle_{service}.config", fromlist=["x"])
    settings_class = next(
        getattr(config, name) for name in dir(config) if name.endswith("Settings") and name != "ServiceSettings"
    )
    extra: dict[str, Any] = {}
    if "keycloak_client_secret" in settings_class.model_fields:
        extra["keycloak_client_secret"] = credentials["platform_client"]
    if "billing_url" in settings_class.model_fields:
        extra["billing_url"] = billing_url
    extra.update(overrides)
    return module.create_app(settings_class(**settings_kwargs(service, database, keycloak, **extra)))  # type: ignore[no-any-return]


@contextmanager
def served_services(
    database: Database,
    keycloak: KeycloakServer,
    credentials: Credentials,
    services: tuple[str, ...] = SERVICES,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Iterator[dict[str, str]]:
    """Every service app served at once: service name → base URL (``overrides``: settings per service).

    Billing comes first whenever tenancy is served: tenancy's onboarding opens metering accounts there.
    """
    if "tenancy" in services:
        services = ("billing", *(s for s in services if s != "billing"))
    urls: dict[str, str] = {}
    contexts = []
    try:
        for service in services:
            with no_socle_environment():
                app = create_app(
                    service,
                    database,
                    keycloak,
                    credentials,
                    billing_url=urls.get("billing"),
                    **(overrides or {}).get(service, {}),
                )
            context = serve(app)
            urls[service] = context.__enter__()
            contexts.append(context)
        yield urls
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


def bearer(
    kc_admin: Any, roles: tuple[str, ...], organization: tuple[str, Any] | None = None, lifespan: int | None = None
) -> dict[str, str]:
    """Headers with a real Keycloak token (a client-credentials client with these roles and tenant, ``lifespan`` s)."""
    client = kc_admin.create_client(roles=roles, organization=organization, access_token_lifespan=lifespan)
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


def onboard_demo(tenancy_url: str, operator: dict[str, str]) -> list[dict[str, Any]]:
    """The demo EPCI and three of its communes, onboarded through the API (idempotent)."""
    with httpx.Client(base_url=tenancy_url, timeout=120) as http:
        registered = http.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator)
        assert registered.status_code in (200, 201), registered.text
        tenants = []
        for insee in DEMO_ONBOARDED:
            response = http.post(f"/v1/tenants/{insee}/onboarding", json=demo_commune(insee), headers=operator)
            assert response.status_code == 200, response.text
            tenants.append(response.json()["tenant"])
    return tenants
