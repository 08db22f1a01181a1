"""Security headers on every answer, errors and unknown paths included, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.isolation.servers import bearer, served_services
from tests.support.keycloak_admin import create_commune

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


@pytest.fixture(scope="module")
def stack(database, keycloak, credentials, kc_admin) -> Iterator[dict[str, Any]]:
    commune = create_commune(kc_admin)
    with served_services(database, keycloak, credentials, ("identity", "console")) as urls:
        yield {"urls": urls, "admin": bearer(kc_admin, ("commune-admin",), (commune.alias, commune.tenant_id))}


def test_answers_carrying_tenant_data_are_not_stored_nor_sniffed(stack) -> None:
    identity = stack["urls"]["identity"]
    with httpx.Client(timeout=30) as http:
        answers = {
            "tenant data": http.get(f"{identity}/v1/me", headers=stack["admin"]),
            "a problem": http.get(f"{identity}/v1/members/{'0' * 8}", headers=stack["admin"]),
            "no token": http.get(f"{identity}/v1/me"),
            "no such path": http.get(f"{identity}/v1/nothing-here", headers=stack["admin"]),
            "the document": http.get(f"{identity}/schema/openapi.json"),
        }
    assert answers["tenant data"].status_code == 200
    assert answers["tenant data"].json()["tenant_id"]
    for what, response in answers.items():
        assert response.headers["x-content-type-options"] == "nosniff", what
        assert response.headers["content-security-policy"] == API_CSP, what
        assert response.headers["cache-control"] == "no-store", what


def test_pages_have_a_policy_and_a_handler_keeps_its_own_headers(stack) -> None:
    with httpx.Client(timeout=30) as http:
        status = http.get(f"{stack['urls']['console']}/")  # the console's public status page
        docs = http.get(f"{stack['urls']['identity']}/schema")
        bundle = http.get(f"{stack['urls']['identity']}/schema/assets/redoc.standalone.js")
    assert status.headers["content-type"].startswith("text/html")
    assert status.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    assert status.headers["cache-control"] == "no-store"
    assert "script-src 'self';" in docs.headers["content-security-policy"]
    assert bundle.headers["cache-control"] == "public, max-age=86400"  # set by its handler, kept
    for response in (status, docs, bundle):
        assert response.headers["x-content-type-options"] == "nosniff"
