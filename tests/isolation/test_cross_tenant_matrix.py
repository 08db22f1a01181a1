"""The cross-tenant matrix: every route of every service against another tenant's token, and the same in SQL.

Routes come from introspecting the real Litestar apps, so a new endpoint is never forgotten:
each declares its rule on the route (``socle_core.access``), an app with a route that does not
is not built, and the first test checks that the isolation catalogue (``routes.routes()``)
reads exactly the routes every app serves. Commune B (a real Keycloak token, ``commune-admin``)
then calls every route on commune A's resources: a tenant resource is a 404 problem+json,
a platform route a 403/404 problem+json, a route of B's own scope answers for B only; and
none of those answers contains anything of A.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from socle_devstack.stack import SERVICES
from socle_tenancy.domain.isolation.probes import ProbeTenant, probe_service
from socle_tenancy.domain.isolation.routes import RouteRule, routes, rule_for
from socle_tenancy.domain.isolation.services import dsn
from tests.isolation.servers import bearer, create_app, no_socle_environment, onboard_demo, served_services

MATRIX_SERVICES = ("tenancy", "identity", "billing")
SKIPPED_METHODS = {"HEAD", "OPTIONS"}


def _routes(app: Any) -> Iterator[tuple[str, str]]:
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(getattr(handler, "http_methods", ())):
                if method not in SKIPPED_METHODS:
                    yield method, route.path


def test_every_route_of_every_service_is_classified(database, keycloak, credentials) -> None:
    unclassified, seen = [], 0
    with no_socle_environment():
        apps = {s: create_app(s, database, keycloak, credentials) for s in SERVICES}
    for service, app in apps.items():
        for method, path in _routes(app):
            seen += 1
            if rule_for(service, method, path) is None:
                unclassified.append(f"{service} {method} {path}")
    assert seen > 30
    assert unclassified == [], (
        "declare access=... (socle_core.access) on these routes and list the service's handlers under the "
        "socle.routes entry point (tenant-resource, tenant-own, "
        f"platform, public or console-session): {unclassified}"
    )
    stale = [
        f"{r.service} {r.method} {r.path}"
        for r in routes()
        if (r.method, r.path) not in {(m, p.rstrip("/") or "/") for m, p in _routes(apps[r.service])}
    ]
    assert stale == [], f"classified routes that no longer exist: {stale}"


@pytest.fixture(scope="module")
def matrix(database, keycloak, credentials, kc_admin) -> Iterator[dict[str, Any]]:
    """Communes A and B of the demo EPCI, and resources of A in every service that has some."""
    with served_services(database, keycloak, credentials, MATRIX_SERVICES) as urls:
        operator = bearer(kc_admin, ("operator",))
        epci_and_communes = onboard_demo(urls["tenancy"], operator)
        a, b, c = epci_and_communes[:3]
        tokens = {t["id"]: bearer(kc_admin, ("commune-admin",), (t["key"], uuid.UUID(t["id"]))) for t in (a, b, c)}
        with httpx.Client(timeout=60) as http:
            account = http.post(
                f"{urls['identity']}/v1/service-accounts",
                json={"name": "capteur-crue-vidourle", "access": "read"},
                headers=tokens[a["id"]],
            )
            assert account.status_code == 201, account.text
            grant = http.post(
                f"{urls['tenancy']}/v1/grants",
                json={
                    "grantee": c["id"],
                    "dataset": "devices",
                    "reason": "station de crue partagée",
                    "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat(),
                },
                headers=tokens[a["id"]],
            )
            assert grant.status_code == 201, grant.text
        yield {
            "urls": urls,
            "a": a,
            "b": b,
            "token_a": tokens[a["id"]],
            "token_b": tokens[b["id"]],
            "values": {
                "tenant": a["id"],
                "account": account.json()["id"],
                "grant": grant.json()["id"],
            },
            "secrets_of_a": {a["id"], a["key"], a["name"], account.json()["id"], account.json()["client_id"]},
        }


def _resource_of_a(rule: RouteRule, matrix: dict[str, Any]) -> str:
    if "account_id" in rule.path:
        return str(matrix["values"]["account"])
    if "grant_id" in rule.path:
        return str(matrix["values"]["grant"])
    if "siren" in rule.path:
        return "243000296"
    return str(matrix["a"]["id"])


def _assert_nothing_of_a(response: httpx.Response, matrix: dict[str, Any], where: str) -> None:
    """Nothing B did not already send: an id B put in the URL may come back in ``instance``."""
    asked = str(response.request.url)
    leaked = [v for v in matrix["secrets_of_a"] if v and v not in asked and v in response.text]
    assert leaked == [], f"{where}: the answer to B contains A's {leaked}: {response.text[:300]}"


@pytest.mark.timeout(900)
def test_commune_b_gets_nothing_of_commune_a_on_any_route(matrix) -> None:
    called: dict[str, int] = {}
    refused = 0
    with httpx.Client(timeout=60) as http:
        for rule in (r for r in routes() if r.service in MATRIX_SERVICES):
            if rule.scope in ("public", "console-session"):
                continue
            where = f"{rule.service} {rule.method} {rule.path}"
            url = matrix["urls"][rule.service] + rule.url(_resource_of_a(rule, matrix))
            if rule.scope == "tenant-own":
                url = matrix["urls"][rule.service] + rule.path
            body = {} if rule.method in ("POST", "PATCH") else None
            # The owner sees it (the resource exists), B does not.
            if rule.scope == "tenant-resource" and rule.method == "GET":
                own = http.get(url, headers=matrix["token_a"])
                assert own.status_code == 200, f"{where}: A cannot read its own resource: {own.text}"
            response = http.request(rule.method, url, headers=matrix["token_b"], json=body)
            _assert_nothing_of_a(response, matrix, where)
            if rule.scope == "tenant-resource":
                assert response.status_code == 404, f"{where}: {response.status_code} {response.text}"
            elif rule.scope == "platform":  # 422: the body is checked before anything is looked up
                assert response.status_code in (403, 404, 422), f"{where}: {response.status_code} {response.text}"
                refused += response.status_code in (403, 404)
            else:
                assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json"), where
                problem = response.json()
                assert problem["status"] == response.status_code
                assert problem["type"].startswith("urn:socle:problem:")
            called[rule.scope] = called.get(rule.scope, 0) + 1
    assert called["tenant-resource"] >= 8
    assert called["platform"] >= 10
    assert refused >= 8
    assert called["tenant-own"] >= 4


@pytest.mark.timeout(900)
async def test_the_same_at_sql_level_through_every_application_role(matrix, database) -> None:
    """The report's probes with A and B only: no read, update, delete or insert across them."""
    import asyncpg

    from socle_tenancy.domain.isolation.catalogue import read_tables  # the same catalogue as the report

    a = ProbeTenant(uuid.UUID(matrix["a"]["id"]), matrix["a"]["key"], "registry")
    b = ProbeTenant(uuid.UUID(matrix["b"]["id"]), matrix["b"]["key"], "registry")
    connection = await asyncpg.connect(dsn(database.url("tenancy", "app")))
    try:
        await connection.execute("SET search_path = pg_catalog")
        tables = await read_tables(connection, list(SERVICES))
    finally:
        await connection.close()
    probed = 0
    for service in SERVICES:
        own = [t for t in tables if t["schema"] == service]
        result = await probe_service(dsn(database.url(service, "app")), service, own, [a, b])
        assert result["connected_as"] == f"socle_{service}_app"
        for table in result["tables"]:
            assert table["violations"] == [], (service, table["table"], table["violations"])
            for pair in table["pairs"]:
                assert pair["select_visible"] - pair["shared_visible"] == 0
                assert pair["update"]["affected"] == pair["delete"]["affected"] == 0
                assert pair["insert"]["refused"] in (True, None)
                probed += pair["outcome"] == "refused"
    assert probed >= 2 * 6  # both directions on every reachable tenant-owned table
