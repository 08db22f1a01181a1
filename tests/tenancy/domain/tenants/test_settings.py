"""Changing an onboarded tenant: its quotas, its name, its e-mail domains (what ``socle-tenants apply`` uses).

Parignargues (30193) is used by no other test.
"""

from __future__ import annotations

import uuid

import pytest

from tests.tenancy.conftest import assert_problem

pytestmark = pytest.mark.usefixtures("demo_epci")
INSEE = "30193"


def bearer(kc_admin, role: str, organization: tuple[str, str]) -> dict[str, str]:
    client = kc_admin.create_client(roles=(role,), organization=organization)
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


async def test_quotas_name_and_domains_change_and_bad_input_changes_nothing(tenancy, operator, agent, kc_admin) -> None:
    onboarded = await tenancy.post(
        f"/v1/tenants/{INSEE}/onboarding",
        json={
            "first_admin_email": "mairie@parignargues.test.socle.fr",
            "email_domains": ["parignargues.test.socle.fr"],
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
            "name": "Parignargues (Gard)",
            "email_domains": ["parignargues.test.socle.fr", " mairie.parignargues.test.socle.fr"],
        },
        headers=operator,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Parignargues (Gard)"
    assert renamed.json()["email_domains"] == ["parignargues.test.socle.fr", "mairie.parignargues.test.socle.fr"]
    organization = kc_admin.request("GET", f"/organizations/{tenant['keycloak_organization_id']}").json()
    assert {d["name"] for d in organization["domains"]} == set(renamed.json()["email_domains"])

    assert_problem(await tenancy.patch(path, json={}, headers=operator), 422, "validation-error")
    assert_problem(await tenancy.patch(path, json={"name": ""}, headers=operator), 422, "validation-error")
    assert (await tenancy.get(path, headers=operator)).json()["tenant"]["name"] == "Parignargues (Gard)"


async def test_a_commune_that_is_not_a_tenant_has_no_quotas(tenancy, operator) -> None:
    body = assert_problem(await tenancy.get("/v1/tenants/30244/quotas", headers=operator), 404, "not-found")
    assert "30244" in body["detail"]
