"""Changing an onboarded tenant: its quotas, its name, its e-mail domains (what ``socle-tenants apply`` uses).

The commune changed is taken from the pool (``free_commune``): no other test touches it.
"""

from __future__ import annotations

import uuid

import pytest

from tests.tenancy.conftest import assert_problem

pytestmark = pytest.mark.usefixtures("demo_epci")


def bearer(kc_admin, role: str, organization: tuple[str, str]) -> dict[str, str]:
    client = kc_admin.create_client(roles=(role,), organization=organization)
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


async def test_quotas_name_and_domains_change_and_bad_input_changes_nothing(
    tenancy, operator, agent, kc_admin, free_commune
) -> None:
    insee, domain, new_name = free_commune.insee, f"c{free_commune.insee}.test.socle.fr", f"{free_commune.name} (Gard)"
    onboarded = await tenancy.post(
        f"/v1/tenants/{insee}/onboarding",
        json={
            "first_admin_email": f"mairie@{domain}",
            "email_domains": [domain],
        },
        headers=operator,
    )
    assert onboarded.status_code == 200, onboarded.text
    tenant = onboarded.json()["tenant"]
    path = f"/v1/tenants/{tenant['id']}"

    changed = await tenancy.patch(f"{path}/quotas", json={"max_devices": 7}, headers=operator)
    assert changed.status_code == 200, changed.text
    assert changed.json()["max_devices"] == 7
    assert changed.json()["max_readings_per_day"] == 200_000

    refused = assert_problem(
        await tenancy.patch(f"{path}/quotas", json={"max_devices": -1, "storage_gb": 9}, headers=operator),
        422,
        "validation-error",
    )
    assert "max_devices" in str(refused["errors"])
    empty = assert_problem(await tenancy.patch(f"{path}/quotas", json={}, headers=operator), 422, "validation-error")
    assert "au moins un" in empty["detail"]
    assert_problem(
        await tenancy.patch(f"{path}/quotas", json={"max_sensors": 3}, headers=operator), 422, "validation-error"
    )
    current = (await tenancy.get(f"{path}/quotas", headers=operator)).json()
    assert (current["max_devices"], current["storage_gb"]) == (7, 5)

    # The tenant reads its own quotas; another commune's admin does not see they exist.
    own = bearer(kc_admin, "commune-admin", (tenant["key"], tenant["id"]))
    assert (await tenancy.get(f"{path}/quotas", headers=own)).json()["max_devices"] == 7
    other = bearer(kc_admin, "commune-admin", (f"commune-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())))
    assert_problem(await tenancy.get(f"{path}/quotas", headers=other), 404, "not-found")
    assert_problem(await tenancy.patch(f"{path}/quotas", json={"max_devices": 1}, headers=own), 403, "forbidden")
    assert_problem(await tenancy.patch(path, json={"name": "X"}, headers=agent), 403, "forbidden")

    renamed = await tenancy.patch(
        path,
        json={
            "name": new_name,
            "email_domains": [domain, f" mairie.{domain}"],
        },
        headers=operator,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == new_name
    assert renamed.json()["email_domains"] == [domain, f"mairie.{domain}"]
    organization = kc_admin.request("GET", f"/organizations/{tenant['keycloak_organization_id']}").json()
    assert {d["name"] for d in organization["domains"]} == set(renamed.json()["email_domains"])

    assert_problem(await tenancy.patch(path, json={}, headers=operator), 422, "validation-error")
    assert_problem(await tenancy.patch(path, json={"name": ""}, headers=operator), 422, "validation-error")
    assert (await tenancy.get(path, headers=operator)).json()["tenant"]["name"] == new_name


async def test_a_commune_that_is_not_a_tenant_has_no_quotas(tenancy, operator, untouched_commune) -> None:
    insee = untouched_commune.insee
    body = assert_problem(await tenancy.get(f"/v1/tenants/{insee}/quotas", headers=operator), 404, "not-found")
    assert insee in body["detail"]
