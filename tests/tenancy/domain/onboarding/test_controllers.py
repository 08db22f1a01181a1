"""Onboarding by API on the real PostgreSQL and Keycloak: no restart, idempotent, resumable."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from socle_tenancy.app import create_app
from tests.support.faults import Faults
from tests.tenancy.conftest import DEMO, DEMO_ONBOARDED, DEMO_SIREN, assert_problem, demo_commune, first_admin

pytestmark = pytest.mark.usefixtures("demo_epci")

STEPS = ["tenant_record", "identity_organization", "first_admin", "default_quotas", "metering_account", "activation"]
THREE_COMMUNES = DEMO_ONBOARDED


def organizations_of(kc_admin, tenant_id: str) -> list[dict[str, Any]]:
    found = kc_admin.request(
        "GET", "/organizations", params={"q": f"tenant_id:{tenant_id}", "briefRepresentation": "false"}
    ).json()
    return [o for o in found if tenant_id in (o.get("attributes") or {}).get("tenant_id", [])]


def users_with_email(kc_admin, email: str) -> list[dict[str, Any]]:
    return list(kc_admin.request("GET", "/users", params={"email": email, "exact": "true"}).json())


def assert_onboarded_in_keycloak(kc_admin, tenant: dict[str, Any], email: str, role: str) -> None:
    organizations = organizations_of(kc_admin, tenant["id"])
    assert len(organizations) == 1, organizations
    organization = organizations[0]
    assert organization["alias"] == tenant["key"]
    assert organization["id"] == tenant["keycloak_organization_id"]
    assert organization["attributes"]["tenant_id"] == [tenant["id"]]
    assert organization["attributes"]["siren"] == [tenant["siren"]]  # ProConnect agents are placed by it
    assert organization["enabled"] is True
    assert {d["name"] for d in organization["domains"]} == set(tenant["email_domains"])
    users = users_with_email(kc_admin, email)
    assert len(users) == 1, users
    members = kc_admin.request("GET", f"/organizations/{organization['id']}/members").json()
    assert [m["id"] for m in members] == [users[0]["id"]]
    # An admin account: a one-time password is enrolled with the password, before any login.
    assert {"VERIFY_EMAIL", "UPDATE_PASSWORD", "CONFIGURE_TOTP"} <= set(users[0].get("requiredActions", []))
    roles = kc_admin.request("GET", f"/users/{users[0]['id']}/role-mappings/realm").json()
    assert role in {r["name"] for r in roles}


async def test_the_epci_and_three_communes_onboard_twice_with_no_restart_and_no_duplicates(
    tenancy, operator, kc_admin
) -> None:
    epci_request = {
        "first_admin_email": DEMO["epci"]["tenant"]["first_admin_email"],
        "email_domains": DEMO["epci"]["tenant"]["email_domains"],
        "quotas": DEMO["epci"]["tenant"]["quotas"],
    }
    first: dict[str, dict[str, Any]] = {}
    for attempt in (1, 2):
        response = await tenancy.post(f"/v1/epcis/{DEMO_SIREN}/onboarding", json=epci_request, headers=operator)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["completed"] is True
        assert [s["step"] for s in body["steps"]] == STEPS
        assert {s["status"] for s in body["steps"]} == {"done"}
        assert body["tenant"]["status"] == "active"
        assert body["tenant"]["kind"] == "epci"
        quotas = next(s for s in body["steps"] if s["step"] == "default_quotas")["result"]
        assert quotas == DEMO["epci"]["tenant"]["quotas"]
        if attempt == 1:
            first["epci"] = body["tenant"]
        else:
            assert body["tenant"]["id"] == first["epci"]["id"]
            # The second run did no work: every step kept its single attempt.
            assert all(s["attempts"] == 1 for s in body["steps"][1:]), body["steps"]

        for insee in THREE_COMMUNES:
            response = await tenancy.post(f"/v1/tenants/{insee}/onboarding", json=demo_commune(insee), headers=operator)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["completed"] is True, body
            tenant = body["tenant"]
            assert tenant["key"] == f"commune-{insee}"
            assert tenant["insee_code"] == insee
            assert tenant["parent_id"] == first["epci"]["id"]
            assert tenant["status"] == "active"
            assert tenant["population"] > 0
            assert tenant["population_year"] == 2023
            account = next(s for s in body["steps"] if s["step"] == "metering_account")["result"]
            assert (account["tenant_id"], account["tenant_key"], account["status"]) == (
                tenant["id"],
                tenant["key"],
                "open",
            )
            if attempt == 1:
                first[insee] = tenant
            else:
                assert tenant["id"] == first[insee]["id"]
                assert tenant["keycloak_organization_id"] == first[insee]["keycloak_organization_id"]

    sommieres = next(c for c in DEMO["communes"] if c["insee"] == "30321")
    quotas = (await tenancy.get(f"/v1/tenants/{first['30321']['id']}", headers=operator)).json()
    result = next(s for s in quotas["steps"] if s["step"] == "default_quotas")["result"]
    assert result["max_devices"] == sommieres["quotas"]["max_devices"]
    assert result["max_readings_per_day"] == 200_000  # the settings' default where the declaration says nothing

    assert_onboarded_in_keycloak(kc_admin, first["epci"], DEMO["epci"]["tenant"]["first_admin_email"], "epci-admin")
    for insee in THREE_COMMUNES:
        email = demo_commune(insee)["first_admin_email"]
        assert_onboarded_in_keycloak(kc_admin, first[insee], email, "commune-admin")

    candidates = (await tenancy.get(f"/v1/epcis/{DEMO_SIREN}/candidates", headers=operator)).json()["candidates"]
    onboarded = {c["insee_code"]: c for c in candidates if c["tenant_id"]}
    assert set(THREE_COMMUNES) <= set(onboarded)
    assert all(onboarded[i]["status"] == "active" for i in THREE_COMMUNES)


async def test_a_crash_mid_workflow_leaves_a_state_that_a_retry_completes(
    tenancy_settings, operator, kc_admin, free_commune
) -> None:
    insee, request = free_commune.insee, first_admin(free_commune)
    # The first call to the members endpoint crashes, retries included (the core client makes 3 attempts),
    # as when Keycloak is down for longer than the retries last: after the organization and the user
    # exist, before membership. Everything else is the real Keycloak.
    transport = Faults(*[httpx.ConnectError] * 3, path="/members", message="injected crash")
    async with AsyncTestClient(create_app(tenancy_settings(), keycloak_transport=transport)) as client:
        crashed = await client.post(f"/v1/tenants/{insee}/onboarding", json=request, headers=operator)
        body = assert_problem(crashed, 503, "identity-provider-unavailable")
        assert transport.injected == 3
        assert body["failed_step"] == "first_admin"
        assert "injected crash" not in str(body)  # the transport's failure is for the log, not the caller
        states = {s["step"]: s["status"] for s in body["steps"]}
        assert states == {
            "tenant_record": "done",
            "identity_organization": "done",
            "first_admin": "failed",
            "default_quotas": "pending",
            "metering_account": "pending",
            "activation": "pending",
        }
        tenant = (await client.get(f"/v1/tenants/commune-{insee}", headers=operator)).json()["tenant"]
        assert tenant["status"] == "invited"

        retried = await client.post(f"/v1/tenants/{insee}/onboarding", headers=operator)
        assert retried.status_code == 200, retried.text
        body = retried.json()
        assert body["completed"] is True
        attempts = {s["step"]: s["attempts"] for s in body["steps"]}
        assert attempts["identity_organization"] == 1  # resumed, not redone
        assert attempts["first_admin"] == 2
        assert body["tenant"]["status"] == "active"
        assert body["tenant"]["id"] == tenant["id"]
    assert_onboarded_in_keycloak(kc_admin, body["tenant"], request["first_admin_email"], "commune-admin")


async def test_keycloak_down_then_back_after_a_restart_resumes_at_the_organization(
    tenancy_settings, operator, kc_admin, free_commune
) -> None:
    insee, request = free_commune.insee, first_admin(free_commune)
    down = tenancy_settings(keycloak_admin_url="http://127.0.0.1:1/admin/realms/socle")
    async with AsyncTestClient(create_app(down)) as client:
        body = assert_problem(
            await client.post(f"/v1/tenants/{insee}/onboarding", json=request, headers=operator),
            503,
            "identity-provider-unavailable",
        )
        assert body["failed_step"] == "identity_organization"
        tenant_id = body["tenant_id"]
    assert organizations_of(kc_admin, tenant_id) == []
    async with AsyncTestClient(create_app(tenancy_settings())) as client:
        response = await client.post(f"/v1/tenants/{insee}/onboarding", headers=operator)
    assert response.status_code == 200, response.text
    assert response.json()["tenant"]["id"] == tenant_id
    assert_onboarded_in_keycloak(kc_admin, response.json()["tenant"], request["first_admin_email"], "commune-admin")


async def test_only_operators_and_epci_admins_may_onboard(tenancy, agent, untouched_commune) -> None:
    body = assert_problem(
        await tenancy.post(
            f"/v1/tenants/{untouched_commune.insee}/onboarding", json=first_admin(untouched_commune), headers=agent
        ),
        403,
        "forbidden",
    )
    assert "epci-admin" in body["detail"]
    assert_problem(await tenancy.post(f"/v1/epcis/{DEMO_SIREN}/onboarding", headers=agent), 403, "forbidden")


async def test_the_admin_of_another_epci_does_not_see_this_one(tenancy, other_epci_admin, untouched_commune) -> None:
    assert_problem(
        await tenancy.post(
            f"/v1/tenants/{untouched_commune.insee}/onboarding",
            json=first_admin(untouched_commune),
            headers=other_epci_admin,
        ),
        404,
        "not-found",
    )


async def test_a_commune_of_another_epci_or_unknown_is_refused_with_a_useful_detail(tenancy, operator) -> None:
    unknown = assert_problem(await tenancy.post("/v1/tenants/99999/onboarding", headers=operator), 404, "not-found")
    assert "99999" in unknown["detail"]
    elsewhere = assert_problem(
        await tenancy.post("/v1/tenants/35238/onboarding", json=demo_commune("30321"), headers=operator),
        409,
        "conflict",
    )
    assert "Rennes" in elsewhere["detail"]
    assert DEMO_SIREN in elsewhere["detail"]


async def test_a_first_onboarding_needs_its_admin_email(tenancy, operator, untouched_commune) -> None:
    response = await tenancy.post(f"/v1/tenants/{untouched_commune.insee}/onboarding", headers=operator)
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["field"] == "body.first_admin_email"
    absent = await tenancy.get(f"/v1/tenants/commune-{untouched_commune.insee}", headers=operator)
    assert_problem(absent, 404, "not-found")  # no half tenant


async def test_invalid_onboarding_input_names_the_field(tenancy, operator, untouched_commune) -> None:
    body = assert_problem(
        await tenancy.post(
            f"/v1/tenants/{untouched_commune.insee}/onboarding",
            json={"first_admin_email": "not-an-email"},
            headers=operator,
        ),
        422,
        "validation-error",
    )
    assert "body.first_admin_email" in {e["field"] for e in body["errors"]}


async def test_concurrent_onboardings_of_one_commune_make_one_tenant_and_one_organization(
    tenancy, operator, kc_admin, free_commune
) -> None:
    insee, request = free_commune.insee, first_admin(free_commune)
    responses = await asyncio.gather(
        *(tenancy.post(f"/v1/tenants/{insee}/onboarding", json=request, headers=operator) for _ in range(3))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200, [r.text for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 409, "onboarding-in-progress")
    final = await tenancy.post(f"/v1/tenants/{insee}/onboarding", headers=operator)
    assert final.json()["completed"] is True
    assert {r.json()["tenant"]["id"] for r in responses if r.status_code == 200} == {final.json()["tenant"]["id"]}
    assert_onboarded_in_keycloak(kc_admin, final.json()["tenant"], request["first_admin_email"], "commune-admin")
