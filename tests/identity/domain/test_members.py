"""``/v1/members`` end to end: the identity app on the real PostgreSQL and Keycloak."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from contextlib import closing
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from socle_identity.app import create_app
from socle_identity.keycloak import Organizations
from tests.core.test_app import assert_problem
from tests.core.test_audit import _chain
from tests.identity.conftest import (
    CONSOLE_CALLBACK,
    NEW_PASSWORD,
    action_link,
    mails_to,
    password_grant,
    use_account_link,
    use_organization_link,
)
from tests.support.apps import served
from tests.support.browser import Browser, authorization_request, fields, visible_text
from tests.support.fixtures import TestTenant as Tenant
from tests.support.fixtures import new_tenant
from tests.support.keycloak_admin import create_user
from tests.support.tokens import unverified_claims


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


@pytest.fixture(scope="module")
def operator(kc_admin) -> dict[str, str]:
    """The platform caller that runs the invitation job on demand."""
    return {"Authorization": f"Bearer {kc_admin.token(kc_admin.create_client(roles=('operator',)))['access_token']}"}


#: What every invitation answer holds, whoever the address belongs to.
INVITATION_FIELDS = {"id", "email", "role", "status", "created_at", "expires_at", "member_id"}


def _address(tenant: Tenant) -> str:
    return f"agent.{uuid.uuid4().hex[:8]}@{tenant.alias}.fr"


async def _invite(identity, headers, tenant: Tenant, role: str = "commune-agent", **extra) -> dict:
    body = {"email": _address(tenant), "first_name": "Camille", "last_name": "Martin", "role": role, **extra}
    response = await identity.post("/v1/members/invitations", json=body, headers=headers)
    assert response.status_code == 202, response.text
    assert set(response.json()) == INVITATION_FIELDS
    return response.json()


async def _settle(identity, operator) -> dict:
    response = await identity.post("/v1/invitations/sync", headers=operator)
    assert response.status_code == 200, response.text
    return response.json()


async def _join(identity, headers, operator, sink, tenant: Tenant, role: str = "commune-agent") -> dict:
    """A member as an admin gets one: invited, the e-mailed link used to set a password, the job run."""
    invitation = await _invite(identity, headers, tenant, role=role)
    (mail,) = mails_to(sink, invitation["email"])
    assert "compte a été mis à jour" in visible_text(use_account_link(action_link(mail)))
    await _settle(identity, operator)
    (member,) = [m for m in await _members(identity, headers) if m["email"] == invitation["email"]]
    return member


async def _members(identity, headers) -> list[dict]:
    response = await identity.get("/v1/members", params={"max": 100}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _subject(identity, headers) -> str:
    return (await identity.get("/v1/me", headers=headers)).json()["subject"]


def _realm_roles(kc_admin, user_id: str) -> set[str]:
    return {r["name"] for r in kc_admin.request("GET", f"/users/{user_id}/role-mappings/realm").json()}


def _organizations_of(kc_admin, user_id: str) -> set[str]:
    return {o["alias"] for o in kc_admin.request("GET", f"/organizations/members/{user_id}/organizations").json()}


async def test_an_invited_agent_becomes_a_member_once_they_set_their_password(
    identity, commune, token_of, operator, smtp_sink, kc_admin
) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    address = _address(tenant)
    body = {"email": address.upper(), "first_name": "Camille", "last_name": "Martin", "role": "commune-agent"}
    invited = await identity.post("/v1/members/invitations", json=body, headers=admin)
    assert invited.status_code == 202, invited.text
    invitation = invited.json()
    assert set(invitation) == INVITATION_FIELDS
    assert (invitation["email"], invitation["role"], invitation["status"]) == (address, "commune-agent", "pending")
    assert invitation["member_id"] is None
    # Nobody is a member before accepting, and the job changes nothing while the link is unused.
    assert await _members(identity, admin) == []
    await _settle(identity, operator)
    assert await _members(identity, admin) == []

    (mail,) = mails_to(smtp_sink, address)
    assert "/realms/socle/" in mail
    done = use_account_link(action_link(mail))
    assert done.status_code == 200, visible_text(done)
    await _settle(identity, operator)
    (member,) = await _members(identity, admin)
    assert member["email"] == address
    assert (member["first_name"], member["last_name"]) == ("Camille", "Martin")
    assert member["roles"] == ["commune-agent"]
    assert member["enabled"] is True
    assert kc_admin.request("GET", f"/users/{member['id']}").json()["emailVerified"] is True

    again = await identity.post("/v1/members/invitations", json=body, headers=admin)
    assert again.status_code == 202, again.text
    assert (again.json()["status"], again.json()["member_id"]) == ("accepted", member["id"])
    assert await _members(identity, admin) == [member]
    assert len(mails_to(smtp_sink, address)) == 1  # a member is not e-mailed again
    listed = (await identity.get("/v1/members/invitations", headers=admin)).json()
    assert [(i["status"], i["member_id"]) for i in listed["items"]] == [("accepted", member["id"])] * 2
    assert listed["total"] == 2


async def test_invitations_are_in_the_communes_audit_chain(
    identity, commune, token_of, operator, smtp_sink, database
) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    member = await _join(identity, admin, operator, smtp_sink, tenant)
    await identity.post(
        "/v1/members/invitations", json={"email": member["email"], "role": "commune-agent"}, headers=admin
    )
    assert (
        await identity.put(f"/v1/members/{member['id']}/role", json={"role": "commune-admin"}, headers=admin)
    ).status_code == 200
    await _join(identity, admin, operator, smtp_sink, tenant, role="commune-admin")  # someone else stays admin
    assert (await identity.delete(f"/v1/members/{member['id']}", headers=admin)).status_code == 204

    subject = await _subject(identity, admin)
    entries = await _chain(database, tenant.id)
    invitations = [r for r in entries if r["action"] == "member.invited"]
    assert [(r["actor"], r["outcome"]) for r in invitations] == [(subject, "success")] * 3
    assert all(r["target"].startswith("invitation:") for r in invitations)
    about_member = [r for r in entries if r["target"] == f"user:{member['id']}"]
    assert [(r["action"], r["actor"], r["outcome"]) for r in about_member] == [
        ("member.joined", member["id"], "success"),
        ("member.role_changed", subject, "success"),
        ("member.removed", subject, "success"),
    ]
    assert '"role": "commune-agent"' in invitations[0]["details"]
    assert f'"invited_by": "{subject}"' in about_member[0]["details"]
    assert '"previous": ["commune-agent"]' in about_member[1]["details"]


async def test_an_existing_account_outside_the_domains_needs_allow_external_and_its_consent(
    identity, commune, token_of, operator, realm_user, kc_admin, smtp_sink, database
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
    assert accepted.status_code == 202, accepted.text
    assert set(accepted.json()) == INVITATION_FIELDS
    assert (accepted.json()["status"], accepted.json()["member_id"]) == ("pending", None)
    # The account is not touched until its owner accepts through the link sent to its address.
    await _settle(identity, operator)
    assert await _members(identity, admin) == []
    assert _organizations_of(kc_admin, user.id) == set()
    assert _realm_roles(kc_admin, user.id) & {"commune-admin", "commune-agent"} == set()

    (mail,) = mails_to(smtp_sink, address)
    use_organization_link(action_link(mail))
    assert _organizations_of(kc_admin, user.id) == {tenant.alias}
    report = await _settle(identity, operator)
    assert report["accepted"] >= 1
    (member,) = await _members(identity, admin)
    assert (member["id"], member["roles"]) == (user.id, ["commune-admin"])
    listed = (await identity.get("/v1/members/invitations", headers=admin)).json()["items"]
    assert [(i["status"], i["member_id"]) for i in listed] == [("accepted", user.id)]


async def test_an_account_that_took_another_communes_address_is_never_enrolled(
    identity, commune, token_of, operator, kc_admin, keycloak, platform_keycloak, smtp_sink, database
) -> None:
    """The reported takeover: an account of commune A takes the address of B's staff, B's admin invites it."""
    tenant_a, tenant_b = await commune(), await commune()
    attacker = create_user(kc_admin, "commune-agent")
    await Organizations(platform_keycloak).add_member(tenant_a.alias, attacker.id)
    taken = f"dgs.adjoint.{uuid.uuid4().hex[:6]}@{tenant_b.alias}.fr"

    # 1. Keycloak's own forms do not let a user change their own address. An incomplete profile
    #    (no last name) gets its update form at the next login, with the address in it.
    account = kc_admin.request("GET", f"/users/{attacker.id}").json()
    kc_admin.request("PUT", f"/users/{attacker.id}", json={**account, "lastName": ""})
    client = kc_admin.create_code_flow_client("takeover", CONSOLE_CALLBACK)
    authorize, _ = authorization_request(keycloak.issuer, client.client_id, CONSOLE_CALLBACK)
    with closing(Browser()) as browser:
        update = browser.follow(browser.send("GET", authorize))
        for _ in range(2):  # identity-first: the username, then the password
            typed = {"username": attacker.username, "password": attacker.password}
            update = browser.follow(browser.submit(update, **{k: v for k, v in typed.items() if k in fields(update)}))
        assert {"firstName", "lastName"} <= set(fields(update)), visible_text(update)
        refused = browser.follow(browser.submit(update, email=taken, firstName="Camille", lastName="Martin"))
        assert "Ce champ est en lecture seule" in visible_text(refused)
    account = kc_admin.request("GET", f"/users/{attacker.id}").json()
    assert account["email"] == f"{attacker.username}@example.fr"

    # 2. Even an account that holds the address (set before this rule, or by an admin) is never enrolled.
    for verified in (False, True):
        kc_admin.request("PUT", f"/users/{attacker.id}", json={**account, "email": taken, "emailVerified": verified})
        admin_b = token_of(tenant_b)
        answer = await identity.post(
            "/v1/members/invitations", json={"email": taken, "role": "commune-admin"}, headers=admin_b
        )
        unknown = await identity.post(
            "/v1/members/invitations", json={"email": _address(tenant_b), "role": "commune-admin"}, headers=admin_b
        )
        assert (answer.status_code, unknown.status_code) == (202, 202), answer.text
        assert set(answer.json()) == set(unknown.json()) == INVITATION_FIELDS
        assert (answer.json()["status"], answer.json()["member_id"]) == ("pending", None)
        assert attacker.id not in answer.text
        assert attacker.username not in answer.text
        await _settle(identity, operator)
        assert _organizations_of(kc_admin, attacker.id) == {tenant_a.alias}
        assert _realm_roles(kc_admin, attacker.id) & {"commune-admin", "commune-agent"} == {"commune-agent"}
        assert await _members(identity, admin_b) == []
    assert mails_to(smtp_sink, taken) == []  # no link ever went to the address for that account

    refusals = [r for r in await _chain(database, tenant_b.id) if r["action"] == "member.invitation_refused"]
    assert [(r["outcome"], r["target"].split(":")[0]) for r in refusals] == [("refused", "invitation")] * 2
    assert all(attacker.id not in r["details"] and attacker.username not in r["details"] for r in refusals)
    assert '"reason": "email_not_verified"' in refusals[0]["details"]
    assert '"reason": "other_organization"' in refusals[1]["details"]


async def test_a_commune_admin_cannot_enrol_other_communes_staff_or_platform_accounts(
    identity, commune, token_of, operator, kc_admin, platform_keycloak, smtp_sink, database
) -> None:
    """``allow_external`` reaches any address, but never another commune's or the platform's accounts."""
    tenant_a, tenant_b = await commune(), await commune()
    staff_b = create_user(kc_admin, "commune-agent")
    await Organizations(platform_keycloak).add_member(tenant_b.alias, staff_b.id)
    accounts = {"staff_b": staff_b, "operator": create_user(kc_admin, "operator")}
    accounts["auditor"] = create_user(kc_admin, "auditor")
    accounts["epci_admin"] = create_user(kc_admin, "epci-admin")
    admin_a = token_of(tenant_a)
    answers = {}
    for name, account in accounts.items():
        response = await identity.post(
            "/v1/members/invitations",
            json={"email": f"{account.username}@example.fr", "role": "commune-agent", "allow_external": True},
            headers=admin_a,
        )
        assert response.status_code == 202, response.text
        answers[name] = response.json()
        assert account.id not in response.text  # no profile disclosed
        assert "Camille" not in response.text
    unknown = await _invite(identity, admin_a, tenant_a)
    assert {frozenset(a) for a in answers.values()} == {frozenset(unknown)}
    assert {(a["status"], a["member_id"]) for a in answers.values()} == {("pending", None)}

    await _settle(identity, operator)
    assert await _members(identity, admin_a) == []
    assert _organizations_of(kc_admin, staff_b.id) == {tenant_b.alias}  # B's agent keeps one commune
    assert _realm_roles(kc_admin, staff_b.id) & {"commune-admin", "commune-agent"} == {"commune-agent"}
    for name in ("operator", "auditor", "epci_admin"):
        assert "commune-agent" not in _realm_roles(kc_admin, accounts[name].id)
        assert _organizations_of(kc_admin, accounts[name].id) == set()
    for account in accounts.values():
        assert mails_to(smtp_sink, f"{account.username}@example.fr") == []

    entries = await _chain(database, tenant_a.id)
    refusals = [r for r in entries if r["action"] == "member.invitation_refused"]
    assert len(refusals) == 4
    assert '"reason": "other_organization"' in refusals[0]["details"]
    assert all('"reason": "platform_role"' in r["details"] for r in refusals[1:])
    assert not any(a.id in r["details"] or a.username in r["details"] for r in entries for a in accounts.values())
    assert [r["action"] for r in entries if r["action"] == "member.invited"] == ["member.invited"]


async def test_an_invitation_link_works_once_and_not_for_long(
    identity, commune, token_of, operator, kc_admin, keycloak, smtp_sink
) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    invitation = await _invite(identity, admin, tenant, role="commune-admin")
    created = dt.datetime.fromisoformat(invitation["created_at"])
    lifetime = dt.datetime.fromisoformat(invitation["expires_at"]) - created
    assert lifetime <= dt.timedelta(hours=24)
    (mail,) = mails_to(smtp_sink, invitation["email"])
    link = action_link(mail)
    claims = unverified_claims(parse_qs(urlsplit(link).query)["key"][0])
    assert claims["exp"] - claims["iat"] <= 24 * 3600
    assert abs((claims["exp"] - claims["iat"]) - lifetime.total_seconds()) <= 5

    use_account_link(link, NEW_PASSWORD)
    await _settle(identity, operator)
    (member,) = await _members(identity, admin)
    assert member["roles"] == ["commune-admin"]
    # Whoever reads the e-mail later (a shared mailbox, a forwarded message) cannot set a new password.
    for _ in range(2):
        reused = use_account_link(link, "Autre-Mot-2026-de-passe")
        assert "Action expirée" in visible_text(reused)
        assert "password-new" not in fields(reused), visible_text(reused)
    client = kc_admin.create_client(direct_access=True)
    login = password_grant(keycloak, client, invitation["email"], NEW_PASSWORD)
    assert login.status_code == 200, login.text
    assert password_grant(keycloak, client, invitation["email"], "Autre-Mot-2026-de-passe").status_code == 401


async def test_bad_input_names_the_fields_and_changes_nothing(
    identity, commune, token_of, database, operator, smtp_sink
) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    response = await identity.post(
        "/v1/members/invitations", json={"email": "not-an-address", "role": "maire"}, headers=admin
    )
    body = assert_problem(response, 422, "validation-error")
    assert {"body.email", "body.role"} <= {e["field"] for e in body["errors"]}
    member = await _join(identity, admin, operator, smtp_sink, tenant)
    bad_role = await identity.put(f"/v1/members/{member['id']}/role", json={"role": "operator"}, headers=admin)
    assert "body.role" in {e["field"] for e in assert_problem(bad_role, 422, "validation-error")["errors"]}
    assert [m["roles"] for m in await _members(identity, admin)] == [["commune-agent"]]
    assert [r["action"] for r in await _chain(database, tenant.id)] == ["member.invited", "member.joined"]


async def test_role_change_replaces_the_other_commune_role(
    identity, commune, token_of, kc_admin, operator, smtp_sink
) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    member = await _join(identity, admin, operator, smtp_sink, tenant)
    promoted = await identity.put(f"/v1/members/{member['id']}/role", json={"role": "commune-admin"}, headers=admin)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["roles"] == ["commune-admin"]
    assert _realm_roles(kc_admin, member["id"]) & {"commune-admin", "commune-agent"} == {"commune-admin"}
    same = await identity.put(f"/v1/members/{member['id']}/role", json={"role": "commune-admin"}, headers=admin)
    assert same.json() == promoted.json()


async def test_the_last_commune_admin_cannot_be_demoted_or_removed(
    identity, commune, token_of, kc_admin, operator, smtp_sink
) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    first = await _join(identity, admin, operator, smtp_sink, tenant, role="commune-admin")
    second = await _join(identity, admin, operator, smtp_sink, tenant, role="commune-admin")
    demoted = await identity.put(f"/v1/members/{first['id']}/role", json={"role": "commune-agent"}, headers=admin)
    assert demoted.status_code == 200, demoted.text

    for response in (
        await identity.put(f"/v1/members/{second['id']}/role", json={"role": "commune-agent"}, headers=admin),
        await identity.delete(f"/v1/members/{second['id']}", headers=admin),
    ):
        body = assert_problem(response, 409, "conflict")
        assert "dernier commune-admin" in body["detail"]
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
    assert body["detail"].startswith("impossible de vous rétrograder")


async def test_removal_ends_the_membership_and_the_commune_roles(
    identity, commune, token_of, kc_admin, platform_keycloak, operator, smtp_sink
) -> None:
    tenant_a, tenant_b = await commune(), await commune()
    admin_a = token_of(tenant_a)
    only_here = await _join(identity, admin_a, operator, smtp_sink, tenant_a)
    shared = await _join(identity, admin_a, operator, smtp_sink, tenant_a)
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
    identity, commune, token_of, platform_keycloak, kc_admin, operator, smtp_sink
) -> None:
    tenant_a, tenant_b = await commune(), await commune()
    shared = await _join(identity, token_of(tenant_a), operator, smtp_sink, tenant_a)
    await Organizations(platform_keycloak).add_member(tenant_b.alias, shared["id"])
    response = await identity.put(
        f"/v1/members/{shared['id']}/role", json={"role": "commune-admin"}, headers=token_of(tenant_b)
    )
    assert "une autre commune" in assert_problem(response, 409, "conflict")["detail"]
    assert "commune-admin" not in _realm_roles(kc_admin, shared["id"])


async def test_another_communes_member_does_not_exist(
    identity, commune, token_of, kc_admin, database, operator, smtp_sink
) -> None:
    tenant_a, tenant_b = await commune(), await commune()
    admin_a, admin_b = token_of(tenant_a), token_of(tenant_b)
    of_b = await _join(identity, admin_b, operator, smtp_sink, tenant_b)
    for response in (
        await identity.put(f"/v1/members/{of_b['id']}/role", json={"role": "commune-admin"}, headers=admin_a),
        await identity.put(f"/v1/members/{of_b['id']}/role", headers=admin_a),  # 404 before the body is read
        await identity.delete(f"/v1/members/{of_b['id']}", headers=admin_a),
        await identity.delete(f"/v1/members/{uuid.uuid4()}", headers=admin_a),
    ):
        body = assert_problem(response, 404, "not-found")
        assert of_b["email"] not in response.text
        assert body["detail"] == "aucun membre de votre commune avec cet identifiant"
    assert await _members(identity, admin_a) == []
    assert await _members(identity, admin_b) == [of_b]
    assert _realm_roles(kc_admin, of_b["id"]) & {"commune-admin", "commune-agent"} == {"commune-agent"}
    assert await _chain(database, tenant_a.id) == []


async def test_agents_may_not_manage_members_and_the_epci_admin_only_reads(
    identity, commune, token_of, operator, smtp_sink
) -> None:
    tenant = await commune()
    member = await _join(identity, token_of(tenant), operator, smtp_sink, tenant)
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


async def test_the_list_is_paginated_with_a_next_link(identity, commune, token_of, operator, smtp_sink) -> None:
    tenant = await commune()
    admin = token_of(tenant)
    invited = {(await _join(identity, admin, operator, smtp_sink, tenant))["id"] for _ in range(3)}
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
    identity_settings, commune, token_of, kc_admin, operator, smtp_sink
) -> None:
    """The count of the other admins and the demotion are serialised per commune (409 for the second).

    The app is served by uvicorn so that the two requests really run at the same time.
    """
    tenant = await commune()
    admin = token_of(tenant)
    with served(create_app(identity_settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=admin, timeout=60) as identity:
            first = await _join(identity, admin, operator, smtp_sink, tenant, role="commune-admin")
            second = await _join(identity, admin, operator, smtp_sink, tenant, role="commune-admin")
            responses = await asyncio.gather(
                identity.put(f"/v1/members/{first['id']}/role", json={"role": "commune-agent"}),
                identity.put(f"/v1/members/{second['id']}/role", json={"role": "commune-agent"}),
            )
            assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
            refused = next(r for r in responses if r.status_code == 409)
            assert "dernier commune-admin" in assert_problem(refused, 409, "conflict")["detail"]
            admins = [m for m in (first, second) if "commune-admin" in _realm_roles(kc_admin, m["id"])]
            assert len(admins) == 1
            # The same for a demotion racing a removal.
            third = await _join(identity, admin, operator, smtp_sink, tenant, role="commune-admin")
            responses = await asyncio.gather(
                identity.put(f"/v1/members/{admins[0]['id']}/role", json={"role": "commune-agent"}),
                identity.delete(f"/v1/members/{third['id']}"),
            )
            assert sorted(r.status_code for r in responses) in ([200, 409], [204, 409]), [r.text for r in responses]
            remaining = [m for m in (admins[0], third) if "commune-admin" in _realm_roles(kc_admin, m["id"])]
            assert len(remaining) == 1
