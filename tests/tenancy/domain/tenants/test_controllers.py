"""The tenant registry API: the EPCI from the official list, candidates, listing, lifecycle."""

from __future__ import annotations

import uuid

import pytest

from socle_reference.catalogue import MemberCommune
from tests.tenancy.conftest import DEMO_SIREN, assert_problem, first_admin


@pytest.fixture(scope="module")
def crespian(commune_pool) -> MemberCommune:
    """The commune this module's registry tests onboard (idempotently, each test again): no other module's."""
    return commune_pool.take()


async def test_registering_the_epci_prefills_its_member_communes_and_is_idempotent(tenancy, operator) -> None:
    first = await tenancy.post("/v1/epcis", json={"siren": "243 000 296"}, headers=operator)
    assert first.status_code in (200, 201), first.text
    again = await tenancy.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["tenant"]["id"] == first.json()["tenant"]["id"]
    assert body["tenant"]["kind"] == "epci"
    assert body["tenant"]["key"] == f"epci-{DEMO_SIREN}"
    assert body["tenant"]["name"] == "CC du Pays de Sommières"
    assert body["tenant"]["population_year"] == 2023
    assert body["member_count"] == 18 == len(body["candidates"])
    assert body["reference"].startswith("@etalab/decoupage-administratif ")
    sommieres = next(c for c in body["candidates"] if c["insee_code"] == "30321")
    assert sommieres["name"] == "Sommières"
    assert sommieres["siren"]
    assert len(sommieres["siren"]) == 9
    assert sommieres["population"] > 4000
    assert sommieres["key"] == "commune-30321"
    assert sum(c["population"] for c in body["candidates"]) == body["tenant"]["population"]

    listed = await tenancy.get(f"/v1/epcis/{DEMO_SIREN}/candidates", headers=operator)
    assert listed.status_code == 200, listed.text
    assert [c["insee_code"] for c in listed.json()["candidates"]] == [c["insee_code"] for c in body["candidates"]]


async def test_an_unknown_siren_is_a_404_problem_that_says_why(tenancy, operator) -> None:
    body = assert_problem(
        await tenancy.post("/v1/epcis", json={"siren": "732829320"}, headers=operator), 404, "not-found"
    )
    assert "732829320" in body["detail"]
    assert "aucun EPCI" in body["detail"]
    assert body["siren"] == "732829320"
    commune = assert_problem(
        await tenancy.post("/v1/epcis", json={"siren": "213003213"}, headers=operator), 404, "not-found"
    )
    assert "commune" in commune["detail"]


async def test_a_malformed_siren_is_a_422_naming_the_field(tenancy, operator) -> None:
    body = assert_problem(
        await tenancy.post("/v1/epcis", json={"siren": "243000297"}, headers=operator), 422, "validation-error"
    )
    assert body["errors"][0]["field"] == "body.siren"
    assert "Luhn" in body["detail"]


async def test_a_second_epci_is_refused_on_this_deployment(tenancy, operator, demo_epci) -> None:
    body = assert_problem(
        await tenancy.post("/v1/epcis", json={"siren": "243500139"}, headers=operator), 409, "conflict"
    )
    assert DEMO_SIREN in body["detail"]


async def test_candidates_of_an_unregistered_epci_are_a_404(tenancy, operator, demo_epci) -> None:
    body = assert_problem(await tenancy.get("/v1/epcis/243500139/candidates", headers=operator), 404, "not-found")
    assert "POST /v1/epcis" in body["detail"]


async def test_a_commune_agent_may_not_register_or_list(tenancy, agent) -> None:
    assert_problem(await tenancy.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=agent), 403, "forbidden")
    assert_problem(await tenancy.get("/v1/tenants", headers=agent), 403, "forbidden")


async def test_tenants_are_listed_by_page(tenancy, operator, demo_epci, crespian) -> None:
    await tenancy.post(f"/v1/tenants/{crespian.insee}/onboarding", json=first_admin(crespian), headers=operator)
    page = (await tenancy.get("/v1/tenants", params={"limit": 1}, headers=operator)).json()
    assert page["limit"] == 1
    assert page["offset"] == 0
    assert page["total"] >= 2
    assert [t["kind"] for t in page["items"]] == ["epci"]
    rest = (await tenancy.get("/v1/tenants", params={"limit": 200, "offset": 1}, headers=operator)).json()
    assert len(rest["items"]) == page["total"] - 1
    assert {t["kind"] for t in rest["items"]} == {"commune"}
    keys = [t["key"] for t in rest["items"]]
    assert keys == sorted(keys)
    communes = (
        await tenancy.get("/v1/tenants", params={"kind": "commune", "status": "active"}, headers=operator)
    ).json()
    assert f"commune-{crespian.insee}" in {t["key"] for t in communes["items"]}
    bad = assert_problem(
        await tenancy.get("/v1/tenants", params={"limit": 0}, headers=operator), 422, "validation-error"
    )
    assert any("limit" in e["field"] for e in bad["errors"])


async def test_a_tenant_is_found_by_id_key_or_insee_and_unknown_is_404(tenancy, operator, demo_epci, crespian) -> None:
    await tenancy.post(f"/v1/tenants/{crespian.insee}/onboarding", json=first_admin(crespian), headers=operator)
    by_key = (await tenancy.get(f"/v1/tenants/commune-{crespian.insee}", headers=operator)).json()
    by_insee = (await tenancy.get(f"/v1/tenants/{crespian.insee}", headers=operator)).json()
    by_id = (await tenancy.get(f"/v1/tenants/{by_key['tenant']['id']}", headers=operator)).json()
    assert by_key == by_insee == by_id
    assert by_id["completed"] is True
    assert_problem(await tenancy.get(f"/v1/tenants/{uuid.uuid4()}", headers=operator), 404, "not-found")


async def test_a_commune_reads_its_own_registry_row_and_not_another(
    tenancy, operator, kc_admin, demo_epci, crespian
) -> None:
    onboarded = await tenancy.post(
        f"/v1/tenants/{crespian.insee}/onboarding", json=first_admin(crespian), headers=operator
    )
    tenant = onboarded.json()["tenant"]
    client = kc_admin.create_client(roles=("commune-admin",), organization=(tenant["key"], uuid.UUID(tenant["id"])))
    headers = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    own = await tenancy.get(f"/v1/tenants/{tenant['id']}", headers=headers)
    assert own.status_code == 200, own.text
    epci = demo_epci["tenant"]["id"]
    assert_problem(await tenancy.get(f"/v1/tenants/{epci}", headers=headers), 404, "not-found")


async def test_suspending_disables_the_organization_and_reactivating_enables_it(
    tenancy, operator, kc_admin, demo_epci, free_commune
) -> None:
    onboarded = await tenancy.post(
        f"/v1/tenants/{free_commune.insee}/onboarding", json=first_admin(free_commune), headers=operator
    )
    assert onboarded.status_code == 200, onboarded.text
    tenant = onboarded.json()["tenant"]
    organization = f"/organizations/{tenant['keycloak_organization_id']}"

    suspended = await tenancy.post(
        f"/v1/tenants/{tenant['id']}/suspend", json={"reason": "unpaid contribution"}, headers=operator
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "unpaid contribution"
    assert suspended.json()["suspended_at"]
    assert kc_admin.request("GET", organization).json()["enabled"] is False

    again = assert_problem(
        await tenancy.post(f"/v1/tenants/{tenant['id']}/suspend", json={"reason": "twice"}, headers=operator),
        409,
        "conflict",
    )
    assert "suspended" in again["detail"]
    onboarding = assert_problem(
        await tenancy.post(f"/v1/tenants/{free_commune.insee}/onboarding", headers=operator), 409, "conflict"
    )
    assert "suspended" in onboarding["detail"]

    back = await tenancy.post(f"/v1/tenants/{tenant['id']}/reactivate", json={"reason": "paid"}, headers=operator)
    assert back.status_code == 200, back.text
    assert back.json()["status"] == "active"
    assert kc_admin.request("GET", organization).json()["enabled"] is True
    assert_problem(
        await tenancy.post(f"/v1/tenants/{tenant['id']}/reactivate", json={"reason": "paid"}, headers=operator),
        409,
        "conflict",
    )


async def test_a_suspension_needs_a_reason_and_an_admin(tenancy, operator, agent, demo_epci) -> None:
    epci = demo_epci["tenant"]["id"]
    body = assert_problem(
        await tenancy.post(f"/v1/tenants/{epci}/suspend", json={}, headers=operator), 422, "validation-error"
    )
    assert "body.reason" in {e["field"] for e in body["errors"]}
    assert_problem(
        await tenancy.post(f"/v1/tenants/{epci}/suspend", json={"reason": "because"}, headers=agent), 403, "forbidden"
    )


async def test_the_admin_of_this_epci_manages_it_and_another_epci_admin_does_not(
    tenancy, kc_admin, demo_epci, other_epci_admin
) -> None:
    client = kc_admin.create_client(
        roles=("epci-admin",), organization=(f"epci-{DEMO_SIREN}", uuid.UUID(demo_epci["tenant"]["id"]))
    )
    own = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    response = await tenancy.get(f"/v1/epcis/{DEMO_SIREN}/candidates", headers=own)
    assert response.status_code == 200, response.text
    assert len(response.json()["candidates"]) == 18
    again = await tenancy.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=own)
    assert again.status_code == 200, again.text
    assert_problem(await tenancy.get(f"/v1/epcis/{DEMO_SIREN}/candidates", headers=other_epci_admin), 404, "not-found")


async def test_a_commune_cannot_tell_which_communes_are_onboarded(
    tenancy, operator, kc_admin, demo_epci, other_epci_admin, crespian
) -> None:
    """Every INSEE code of the EPCI, ids and keys, existing or not: one answer for everything not the caller's."""
    onboarded = await tenancy.post(
        f"/v1/tenants/{crespian.insee}/onboarding", json=first_admin(crespian), headers=operator
    )
    tenant = onboarded.json()["tenant"]
    client = kc_admin.create_client(roles=("commune-admin",), organization=(tenant["key"], uuid.UUID(tenant["id"])))
    admin = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    epci = demo_epci["tenant"]
    members = [c["insee_code"] for c in demo_epci["candidates"] if c["insee_code"] != crespian.insee]
    others = [c["tenant_id"] for c in demo_epci["candidates"] if c["tenant_id"] not in (None, tenant["id"])]
    existing = [epci["id"], epci["key"], *others]
    absent = [str(uuid.uuid4()), "01001", "commune-01001", "epci-200000172"]
    answers = {}
    for ref in [*members, *existing, *absent]:
        for suffix in ("", "/quotas"):
            path = f"/v1/tenants/{ref}{suffix}"
            body = assert_problem(await tenancy.get(path, headers=admin), 404, "not-found")
            assert body.pop("instance") == path
            answers[path] = body
    assert len({tuple(sorted(b.items())) for b in answers.values()}) == 1, answers
    assert next(iter(answers.values()))["detail"] == "aucun tenant de ce nom"
    assert (
        await tenancy.get(f"/v1/tenants/{crespian.insee}", headers=admin)
    ).status_code == 200  # its own, by INSEE code

    # Another EPCI's admin: the same refusal whether the tenant exists or not.
    refusals = set()
    for ref in (epci["id"], crespian.insee, str(uuid.uuid4()), "01001"):
        for method, suffix, body in (("PATCH", "", {"name": "X"}), ("PATCH", "/quotas", {"max_devices": 1})):
            response = await tenancy.request(method, f"/v1/tenants/{ref}{suffix}", json=body, headers=other_epci_admin)
            problem = assert_problem(response, 404, "not-found")
            refusals.add(problem["detail"])
    assert len(refusals) == 1, refusals
