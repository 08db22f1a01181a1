"""The tenancy app as assembled: its routes in the OpenAPI document, health on the real servers."""

from __future__ import annotations


async def test_the_openapi_document_lists_the_registry_and_onboarding_routes(tenancy) -> None:
    response = await tenancy.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    assert {
        "/v1/epcis",
        "/v1/epcis/{siren}/candidates",
        "/v1/epcis/{siren}/onboarding",
        "/v1/tenants",
        "/v1/tenants/{ref}",
        "/v1/tenants/{ref}/onboarding",
        "/v1/tenants/{ref}/suspend",
        "/v1/tenants/{ref}/reactivate",
    } <= set(paths)


async def test_ready_checks_the_database_and_keycloak(tenancy) -> None:
    ready = await tenancy.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"]["status"] == "ok"
