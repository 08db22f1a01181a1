"""Every onboarding step lands in the new tenant's audit chain, with who asked for it."""

from __future__ import annotations

import pytest

from socle_tenancy.domain.onboarding.services import STEPS
from tests.support.tokens import unverified_claims

pytestmark = pytest.mark.usefixtures("demo_epci")


def _subject(headers: dict[str, str]) -> str:
    return str(unverified_claims(headers["Authorization"].split()[1])["sub"])


async def test_onboarding_steps_are_recorded_in_the_tenants_chain(tenancy, operator, kc_admin, free_commune) -> None:
    body = {"first_admin_email": f"mairie@audit-{free_commune.insee}.test.socle.fr"}
    response = await tenancy.post(f"/v1/tenants/{free_commune.insee}/onboarding", json=body, headers=operator)
    assert response.status_code == 200, response.text
    tenant = response.json()["tenant"]["id"]
    client = kc_admin.create_client(roles=("auditor",))
    auditor = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    page = await tenancy.get("/v1/audit/entries", params={"tenant": tenant, "action": "onboarding"}, headers=auditor)
    assert page.status_code == 200, page.text
    entries = page.json()["items"]
    # Each step once when it completed (a re-run records its tenant_record step again, nothing else).
    assert {e["action"] for e in entries} == {f"onboarding.{step}" for step in STEPS}
    assert all(e["outcome"] == "success" and e["target"] == f"tenant:{tenant}" for e in entries)
    newest = entries[0]
    assert newest["actor"] == _subject(operator)
    done = {e["action"]: e["details"]["result"] for e in entries}
    assert done["onboarding.identity_organization"]["alias"] == response.json()["tenant"]["key"]
    assert done["onboarding.activation"] == {"status": "active"}
    assert done["onboarding.metering_account"]["tenant_key"] == response.json()["tenant"]["key"]
    # Billing recorded the opening of the account in the same chain, as the platform service account.
    billing = await tenancy.get("/v1/audit/entries", params={"tenant": tenant, "action": "billing"}, headers=auditor)
    assert [e["action"] for e in billing.json()["items"]] == ["billing.metering_account_opened"]
    assert billing.json()["items"][0]["details"] == {"tenant_key": response.json()["tenant"]["key"], "kind": "commune"}
