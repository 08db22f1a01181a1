"""``/v1/members`` end to end: the identity app on the real PostgreSQL and Keycloak."""

from __future__ import annotations

import asyncio
import email as email_parser
import uuid

import httpx
import pytest

from socle_identity.app import create_app
from socle_identity.keycloak import Organizations
from tests.core.test_app import assert_problem
from tests.core.test_audit import _chain
from tests.support.apps import served
from tests.support.fixtures import TestTenant as Tenant
from tests.support.fixtures import new_tenant


@pytest.fixture(autouse=True)
def _mail_sink(smtp_sink):
    """Invitations send Keycloak's e-mail: the realm sends them to the test mail sink."""
    return smtp_sink


@pytest.fixture
def commune(platform_keycloak):
    """A tenant whose organization exists in Keycloak, with the email domain ``<alias>.fr``."""

    async def make() -> Tenant:
        tenant = new_tenant()
        await Organizations(platform_keycloak).ensure(
            tenant.alias, name=f"Mairie {tenant.alias}", tenant_id=tenant.id, domains=(f"{tenant.alias}.fr",)
        )
        return tenant

    return make


@pytest.fixture
def token_of(kc_admin):
    """A token bound to a tenant with these roles (a client-credentials client, like a console session)."""

    def make(tenant: Tenant, *roles: str) -> dict[str, str]:
        client = kc_admin.create_client(organization=(tenant.alias, tenant.id), roles=roles or ("commune-admin",))
        return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}

    return make


def _address(tenant: Tenant) -> str:
    return f"agent.{uuid.uuid4().hex[:8]}@{tenant.alias}.fr"


async def _invite(identity, headers, tenant: Tenant, role: str = "commune-agent", **extra) -> dict:
    body = {"email": _address(tenant), "first_name": "Camille", "last_name": "Martin", "role": role, **extra}
    response = await identity.post("/v1/members/invitations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _members(identity, headers) -> list[dict]:
    response = await identity.get("/v1/members", params={"max": 100}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _subject(identity, headers) -> str:
    return (await identity.get("/v1/me", headers=headers)).json()["subject"]


def _realm_roles(kc_admin, user_id: str) -> set[str]:
    return {r["name"] for r in kc_admin.request("GET", f"/users/{user_id}/role-mappings/realm").json()}


async def test_an_invited_agent_is_listed_once_with_their_role(identity, commune, token_of, smtp_sink) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    address = _address(tenant)
    body = {"email": address.upper(), "first_name": "Camille", "last_name": "Martin", "role": "commune-agent"}
    invited = await identity.post("/v1/members/invitations", json=body, headers=admin)
    assert invited.status_code == 201, invited.text
    member = invited.json()
    assert member["email"] == address
    assert (member["first_name"], member["last_name"]) == ("Camille", "Martin")
    assert member["roles"] == ["commune-agent"]
    assert member["enabled"] is True

    # Keycloak emailed the new agent a link to set their password.
    sent = [m for m in smtp_sink.messages if address in m[1]]
    assert len(sent) == 1
    text = "".join(
        part.get_payload(decode=True).decode()
        for part in email_parser.message_from_bytes(sent[0][2]).walk()
        if part.get_content_maintype() == "text"
    )
    assert "/realms/socle/" in text

    again = await identity.post("/v1/members/invitations", json=body, headers=admin)
    assert again.status_code == 200, again.text
    assert again.json() == member
    assert await _members(identity, admin) == [member]
    assert len([m for m in smtp_sink.messages if address in m[1]]) == 1


async def test_invitations_are_in_the_communes_audit_chain(identity, commune, token_of, database) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    member = await _invite(identity, admin, tenant)
    await identity.post(
        "/v1/members/invitations", json={"email": member["email"], "role": "commune-agent"}, headers=admin
    )
    assert (
        await identity.put(f"/v1/members/{member['id']}/role", json={"role": "commune-admin"}, headers=admin)
    ).status_code == 200
    await _invite(identity, admin, tenant, role="commune-admin")  # someone else stays admin
    assert (await identity.delete(f"/v1/members/{member['id']}", headers=admin)).status_code == 204

    subject = await _subject(identity, admin)
    entries = [r for r in await _chain(database, tenant.id) if r["target"] == f"user:{member['id']}"]
    assert [(r["action"], r["actor"], r["outcome"]) for r in entries] == [
        ("member.invited", subject, "success"),
        ("member.role_changed", subject, "success"),
        ("member.removed", subject, "success"),
    ]
    assert '"role": "commune-agent"' in entries[0]["details"]
    assert '"previous": ["commune-agent"]' in entries[1]["details"]


async def test_an_existing_account_outside_the_domains_needs_allow_external(
    identity, commune, token_of, realm_user, kc_admin, database
) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    user = realm_user()
    address = f"{user.username}@example.fr"
    refused = await identity.post(
        "/v1/members/invitations", json={"email": address, "role": "commune-admin"}, headers=admin
    )
    body = assert_problem(refused, 422, "validation-error")
    assert body["errors"][0]["field"] == "body.email"
    assert "allow_external" in body["detail"]
    assert await _members(identity, admin) == []
    assert _realm_roles(kc_admin, user.id) & {"commune-admin", "commune-agent"} == set()
    assert await _chain(database, tenant.id) == []

    accepted = await identity.post(
        "/v1/members/invitations",
        json={"email": address, "role": "commune-admin", "allow_external": True},
        headers=admin,
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["id"] == user.id
    assert accepted.json()["roles"] == ["commune-admin"]
    assert [m["id"] for m in await _members(identity, admin)] == [user.id]


async def test_bad_input_names_the_fields_and_changes_nothing(identity, commune, token_of, database) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    response = await identity.post(
        "/v1/members/invitations", json={"email": "not-an-address", "role": "maire"}, headers=admin
    )
    body = assert_problem(response, 422, "validation-error")
    assert {"body.email", "body.role"} <= {e["field"] for e in body["errors"]}
    member = await _invite(identity, admin, tenant)
    bad_role = await identity.put(f"/v1/members/{member['id']}/role", json={"role": "operator"}, headers=admin)
    assert "body.role" in {e["field"] for e in assert_problem(bad_role, 422, "validation-error")["errors"]}
    assert [m["roles"] for m in await _members(identity, admin)] == [["commune-agent"]]
    assert [r["action"] for r in await _chain(database, tenant.id)] == ["member.invited"]


async def test_role_change_replaces_the_other_commune_role(identity, commune, token_of, kc_admin) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    member = await _invite(identity, admin, tenant)
    promoted = await identity.put(f"/v1/members/{member['id']}/role", json={"role": "commune-admin"}, headers=admin)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["roles"] == ["commune-admin"]
    assert _realm_roles(kc_admin, member["id"]) & {"commune-admin", "commune-agent"} == {"commune-admin"}
    same = await identity.put(f"/v1/members/{member['id']}/role", json={"role": "commune-admin"}, headers=admin)
    assert same.json() == promoted.json()


async def test_the_last_commune_admin_cannot_be_demoted_or_removed(identity, commune, token_of, kc_admin) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    first = await _invite(identity, admin, tenant, role="commune-admin")
    second = await _invite(identity, admin, tenant, role="commune-admin")
    demoted = await identity.put(f"/v1/members/{first['id']}/role", json={"role": "commune-agent"}, headers=admin)
    assert demoted.status_code == 200, demoted.text

    for response in (
        await identity.put(f"/v1/members/{second['id']}/role", json={"role": "commune-agent"}, headers=admin),
        await identity.delete(f"/v1/members/{second['id']}", headers=admin),
    ):
        body = assert_problem(response, 409, "conflict")
        assert "last commune-admin" in body["detail"]
    assert _realm_roles(kc_admin, second["id"]) & {"commune-admin", "commune-agent"} == {"commune-admin"}
    assert second["id"] in {m["id"] for m in await _members(identity, admin)}


async def test_an_admin_who_is_the_last_one_cannot_demote_themselves(
    identity, commune, kc_admin, platform_keycloak
) -> None:
    tenant = await commune()
    client = kc_admin.create_client(organization=(tenant.alias, tenant.id), roles=("commune-admin",))
    admin = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    myself = await _subject(identity, admin)
    await Organizations(platform_keycloak).add_member(tenant.alias, myself)
    response = await identity.put(f"/v1/members/{myself}/role", json={"role": "commune-agent"}, headers=admin)
    body = assert_problem(response, 409, "conflict")
    assert body["detail"].startswith("cannot demote yourself")


async def test_removal_ends_the_membership_and_the_commune_roles(
    identity, commune, token_of, kc_admin, platform_keycloak
) -> None:
    tenant_a, tenant_b = await commune(), await commune()
    admin_a = token_of(tenant_a)
    only_here = await _invite(identity, admin_a, tenant_a)
    shared = await _invite(identity, admin_a, tenant_a)
    await Organizations(platform_keycloak).add_member(tenant_b.alias, shared["id"])

    for member in (only_here, shared):
        removed = await identity.delete(f"/v1/members/{member['id']}", headers=admin_a)
        assert removed.status_code == 204, removed.text
    assert await _members(identity, admin_a) == []
    # the account stays in the realm; its commune role goes only with its last commune
    assert kc_admin.request("GET", f"/users/{only_here['id']}").json()["email"] == only_here["email"]
    assert "commune-agent" not in _realm_roles(kc_admin, only_here["id"])
    assert "commune-agent" in _realm_roles(kc_admin, shared["id"])
    assert [m["id"] for m in await _members(identity, token_of(tenant_b))] == [shared["id"]]
    assert_problem(await identity.delete(f"/v1/members/{only_here['id']}", headers=admin_a), 404, "not-found")


async def test_a_shared_members_role_is_not_changed_by_one_commune(
    identity, commune, token_of, platform_keycloak, kc_admin
) -> None:
    tenant_a, tenant_b = await commune(), await commune()
    shared = await _invite(identity, token_of(tenant_a), tenant_a)
    await Organizations(platform_keycloak).add_member(tenant_b.alias, shared["id"])
    response = await identity.put(
        f"/v1/members/{shared['id']}/role", json={"role": "commune-admin"}, headers=token_of(tenant_b)
    )
    assert "another commune" in assert_problem(response, 409, "conflict")["detail"]
    assert "commune-admin" not in _realm_roles(kc_admin, shared["id"])


async def test_another_communes_member_does_not_exist(identity, commune, token_of, kc_admin, database) -> None:
    tenant_a, tenant_b = await commune(), await commune()
    admin_a, admin_b = token_of(tenant_a), token_of(tenant_b)
    of_b = await _invite(identity, admin_b, tenant_b)
    for response in (
        await identity.put(f"/v1/members/{of_b['id']}/role", json={"role": "commune-admin"}, headers=admin_a),
        await identity.put(f"/v1/members/{of_b['id']}/role", headers=admin_a),  # 404 before the body is read
        await identity.delete(f"/v1/members/{of_b['id']}", headers=admin_a),
        await identity.delete(f"/v1/members/{uuid.uuid4()}", headers=admin_a),
    ):
        body = assert_problem(response, 404, "not-found")
        assert of_b["email"] not in response.text
        assert body["detail"] == "no member of your commune with this id"
    assert await _members(identity, admin_a) == []
    assert await _members(identity, admin_b) == [of_b]
    assert _realm_roles(kc_admin, of_b["id"]) & {"commune-admin", "commune-agent"} == {"commune-agent"}
    assert await _chain(database, tenant_a.id) == []


async def test_agents_may_not_manage_members_and_the_epci_admin_only_reads(identity, commune, token_of) -> None:
    tenant = await commune()
    member = await _invite(identity, token_of(tenant), tenant)
    agent = token_of(tenant, "commune-agent")
    for response in (
        await identity.get("/v1/members", headers=agent),
        await identity.post(
            "/v1/members/invitations", json={"email": _address(tenant), "role": "commune-agent"}, headers=agent
        ),
        await identity.put(f"/v1/members/{member['id']}/role", json={"role": "commune-admin"}, headers=agent),
        await identity.delete(f"/v1/members/{member['id']}", headers=agent),
    ):
        assert "commune-admin" in assert_problem(response, 403, "forbidden")["detail"]
    epci = token_of(tenant, "epci-admin")
    assert [m["id"] for m in await _members(identity, epci)] == [member["id"]]
    assert_problem(await identity.delete(f"/v1/members/{member['id']}", headers=epci), 403, "forbidden")
    assert [m["roles"] for m in await _members(identity, token_of(tenant))] == [["commune-agent"]]


async def test_a_token_without_a_commune_is_refused(identity, kc_admin) -> None:
    client = kc_admin.create_client(roles=("commune-admin",))
    token = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    assert_problem(await identity.get("/v1/members", headers=token), 403, "forbidden")


async def test_the_list_is_paginated_with_a_next_link(identity, commune, token_of) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    invited = {(await _invite(identity, admin, tenant))["id"] for _ in range(3)}
    first = await identity.get("/v1/members", params={"max": 2}, headers=admin)
    assert first.status_code == 200, first.text
    page = first.json()
    assert (page["first"], page["max"], page["total"], len(page["items"])) == (0, 2, 3, 2)
    assert page["next"] == "/v1/members?first=2&max=2"
    rest = (await identity.get(page["next"], headers=admin)).json()
    assert len(rest["items"]) == 1
    assert rest["next"] is None
    assert {m["id"] for m in page["items"] + rest["items"]} == invited
    too_big = await identity.get("/v1/members", params={"max": 1000}, headers=admin)
    assert_problem(too_big, 422, "validation-error")


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    identity_settings, commune, token_of, kc_admin
) -> None:
    """The count of the other admins and the demotion are serialised per commune (409 for the second).

    The app is served by uvicorn so that the two requests really run at the same time.
    """
    tenant = await commune()
    admin = token_of(tenant)
    with served(create_app(identity_settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=admin, timeout=60) as identity:
            first = await _invite(identity, admin, tenant, role="commune-admin")
            second = await _invite(identity, admin, tenant, role="commune-admin")
            responses = await asyncio.gather(
                identity.put(f"/v1/members/{first['id']}/role", json={"role": "commune-agent"}),
                identity.put(f"/v1/members/{second['id']}/role", json={"role": "commune-agent"}),
            )
            assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
            refused = next(r for r in responses if r.status_code == 409)
            assert "last commune-admin" in assert_problem(refused, 409, "conflict")["detail"]
            admins = [m for m in (first, second) if "commune-admin" in _realm_roles(kc_admin, m["id"])]
            assert len(admins) == 1
            # The same for a demotion racing a removal.
            third = await _invite(identity, admin, tenant, role="commune-admin")
            responses = await asyncio.gather(
                identity.put(f"/v1/members/{admins[0]['id']}/role", json={"role": "commune-agent"}),
                identity.delete(f"/v1/members/{third['id']}"),
            )
            assert sorted(r.status_code for r in responses) in ([200, 409], [204, 409]), [r.text for r in responses]
            remaining = [m for m in (admins[0], third) if "commune-admin" in _realm_roles(kc_admin, m["id"])]
            assert len(remaining) == 1
