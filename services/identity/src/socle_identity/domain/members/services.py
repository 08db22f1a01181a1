"""Members of one commune's Keycloak organization: invitation, role, removal.

Keycloak holds the membership and the roles; this service only lets an admin act inside
their own organization. A user who is not a member of it does not exist for the caller
(404), whoever they are in the realm. Roles are realm roles, so they apply in every
organization a user belongs to (ADR 0004): a commune may not change the role of a member it
shares with another commune, since that would change their rights there too.

Keycloak's ``invite-user`` endpoints make someone a member only when they click the email's
link, and cannot carry a role; an admin must see the agent, with their role, at once. So an
invitation creates the account when the address is unknown (Keycloak then emails a link to
set a password, ``execute-actions-email``), adds the membership and assigns the role.
Every change is recorded in the tenant's audit chain in the request's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.audit import record
from socle_core.errors import Conflict, InvalidInput, NotFound
from socle_core.keycloak_admin import location_id
from socle_identity.deps import TenantAdmin
from socle_identity.domain.members.schemas import COMMUNE_ROLES, Invitation, Member
from socle_identity.domain.service_accounts.services import keycloak_problems
from socle_identity.keycloak import KeycloakAdminClient, Organization, Organizations

log = structlog.get_logger("socle.identity.members")

#: Members read per Keycloak call when scanning a whole organization.
_SCAN_PAGE = 100
#: What the invitation email asks a new account to do; the link is valid this long.
_NEW_ACCOUNT_ACTIONS = ["UPDATE_PASSWORD"]
_INVITATION_LIFESPAN_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Invited:
    member: Member
    created: bool  # False: already a member, nothing changed


class MemberService:
    def __init__(self, session: AsyncSession, admin: TenantAdmin, keycloak: KeycloakAdminClient) -> None:
        self.session = session
        self.admin = admin
        self.keycloak = keycloak
        self.organizations = Organizations(keycloak)
        self._role_reps: dict[str, dict[str, Any]] = {}
        self._org: Organization | None = None

    async def page(self, first: int, max_: int) -> tuple[list[Member], int]:
        with keycloak_problems():
            org = await self._organization()
            total = int((await self.keycloak.request("GET", f"/organizations/{org.id}/members/count")).json())
            reps = (
                await self.keycloak.request(
                    "GET", f"/organizations/{org.id}/members", params={"first": first, "max": max_}
                )
            ).json()
            return [await self._member(rep) for rep in reps], total

    async def invite(self, invitation: Invitation) -> Invited:
        email = invitation.email.lower()
        with keycloak_problems():
            org = await self._organization()
            _check_domain(email, org, allow_external=invitation.allow_external)
            user = await self._user_by_email(email)
            if user is not None and await self._member_rep(org, str(user["id"])) is not None:
                return Invited(await self._member(user), created=False)
            created = user is None
            if user is None:
                user = await self._create_account(invitation, email)
            else:
                await self._refuse_if_shared(str(user["id"]), org, wanted=invitation.role)
            user_id = str(user["id"])
            await self._add_roles(user_id, [invitation.role])
            if not created:  # an account coming back keeps no commune role but the one given now
                await self._remove_roles(user_id, [r for r in COMMUNE_ROLES if r != invitation.role])
            await self.organizations.add_member(self.admin.organization, user_id)
            member = await self._member(await self._require_member(org, user_id))
        await self._audit(
            "member.invited", user_id, role=invitation.role, account_created=created, external=_is_external(email, org)
        )
        log.info("member_invited", user_id=user_id, role=invitation.role, by=self.admin.subject)
        return Invited(member, created=True)

    async def require(self, user_id: str) -> Member:
        """The member named by a path, checked before the body: another commune's user is a 404."""
        with keycloak_problems():
            return await self._member(await self._require_member(await self._organization(), user_id))

    async def change_role(self, current: Member, role: str) -> Member:
        user_id = current.id
        if current.roles == [role]:
            return current
        with keycloak_problems():
            org = await self._organization()
            await self._lock_admins(org)
            current = await self._member(await self._require_member(org, user_id))  # as of the lock
            if current.roles == [role]:
                return current
            await self._refuse_if_shared(user_id, org, wanted=role)
            if "commune-admin" in current.roles and role != "commune-admin":
                await self._refuse_last_admin(org, user_id, "demote")
            await self._add_roles(user_id, [role])
            await self._remove_roles(user_id, [r for r in COMMUNE_ROLES if r != role])
            member = await self._member(await self._require_member(org, user_id))
        await self._audit("member.role_changed", user_id, previous=current.roles, role=role)
        log.info("member_role_changed", user_id=user_id, role=role, by=self.admin.subject)
        return member

    async def remove(self, current: Member) -> None:
        user_id = current.id
        with keycloak_problems():
            org = await self._organization()
            await self._lock_admins(org)
            current = await self._member(await self._require_member(org, user_id))  # as of the lock
            if "commune-admin" in current.roles:
                await self._refuse_last_admin(org, user_id, "remove")
            await self.organizations.remove_member(self.admin.organization, user_id)
            elsewhere = await self._other_organizations(user_id, org)
            if not elsewhere:  # their commune rights ended with their last commune
                await self._remove_roles(user_id, list(COMMUNE_ROLES))
                await self.keycloak.request("POST", f"/users/{user_id}/logout")
        await self._audit("member.removed", user_id, roles=current.roles, roles_kept=bool(elsewhere))
        log.info("member_removed", user_id=user_id, by=self.admin.subject)

    async def _organization(self) -> Organization:
        if self._org is None:  # one request, one organization: looked up once
            self._org = await self.organizations.require(self.admin.organization)
        return self._org

    async def _member_rep(self, org: Organization, user_id: str) -> dict[str, Any] | None:
        response = await self.keycloak.request("GET", f"/organizations/{org.id}/members/{user_id}", expected=(404,))
        return None if response.status_code == 404 else dict(response.json())

    async def _require_member(self, org: Organization, user_id: str) -> dict[str, Any]:
        """The member, or 404: a user of another commune (or of nobody) does not exist here."""
        rep = await self._member_rep(org, user_id)
        if rep is None:
            raise NotFound("no member of your commune with this id", user_id=user_id)
        return rep

    async def _member(self, rep: dict[str, Any]) -> Member:
        roles = (await self.keycloak.request("GET", f"/users/{rep['id']}/role-mappings/realm")).json()
        names = {str(r.get("name")) for r in roles}
        return Member(
            id=str(rep["id"]),
            username=str(rep.get("username", "")),
            email=rep.get("email"),
            first_name=rep.get("firstName"),
            last_name=rep.get("lastName"),
            enabled=bool(rep.get("enabled", True)),
            roles=[r for r in COMMUNE_ROLES if r in names],  # type: ignore[misc]
        )

    async def _user_by_email(self, email: str) -> dict[str, Any] | None:
        found = (await self.keycloak.request("GET", "/users", params={"email": email, "exact": "true"})).json()
        return next((dict(u) for u in found if str(u.get("email", "")).lower() == email), None)

    async def _create_account(self, invitation: Invitation, email: str) -> dict[str, Any]:
        """A new account whose owner sets their password through Keycloak's email link."""
        response = await self.keycloak.request(
            "POST",
            "/users",
            json={
                "username": email,
                "email": email,
                "firstName": invitation.first_name or "",
                "lastName": invitation.last_name or "",
                "enabled": True,
                "emailVerified": False,
                "requiredActions": _NEW_ACCOUNT_ACTIONS,
            },
        )
        user_id = location_id(response)
        try:
            await self.keycloak.request(
                "PUT",
                f"/users/{user_id}/execute-actions-email",
                params={"lifespan": _INVITATION_LIFESPAN_SECONDS},
                json=_NEW_ACCOUNT_ACTIONS,
            )
        except BaseException:  # no email, no account: the admin can simply try again
            await self.keycloak.request("DELETE", f"/users/{user_id}", expected=(404,))
            raise
        return dict((await self.keycloak.request("GET", f"/users/{user_id}")).json())

    async def _other_organizations(self, user_id: str, org: Organization) -> list[str]:
        memberships = (
            await self.keycloak.request(
                "GET", f"/organizations/members/{user_id}/organizations", params={"briefRepresentation": "true"}
            )
        ).json()
        return [str(m["alias"]) for m in memberships if m.get("id") != org.id]

    async def _refuse_if_shared(self, user_id: str, org: Organization, *, wanted: str) -> None:
        """A realm role change would reach every commune of a shared member: refused unless it changes nothing."""
        others = await self._other_organizations(user_id, org)
        if not others:
            return
        roles = {
            str(r.get("name"))
            for r in (await self.keycloak.request("GET", f"/users/{user_id}/role-mappings/realm")).json()
        }
        if wanted in roles and not (set(COMMUNE_ROLES) - {wanted}) & roles:
            return
        raise Conflict(
            f"this person also belongs to another commune, and a role applies in every commune they belong to: "
            f"ask the EPCI to change it to {wanted!r} for all of them",
            user_id=user_id,
        )

    async def _lock_admins(self, org: Organization) -> None:
        """Serialise the changes that may take a commune's admins away, until the request commits.

        Counting the other admins, then demoting, is two steps: two admins demoting each other at
        the same moment would both see the other one and leave the commune with none. A lock per
        organization held by the request's transaction makes the second wait and count again.
        """
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"socle.identity.commune-admins:{org.id}"},
        )

    async def _refuse_last_admin(self, org: Organization, user_id: str, verb: str) -> None:
        """A commune keeps at least one admin, or nobody could manage it any more."""
        first = 0
        while True:
            reps = (
                await self.keycloak.request(
                    "GET", f"/organizations/{org.id}/members", params={"first": first, "max": _SCAN_PAGE}
                )
            ).json()
            for rep in reps:
                if rep["id"] == user_id or not rep.get("enabled", True):
                    continue
                if "commune-admin" in (await self._member(rep)).roles:
                    return
            if len(reps) < _SCAN_PAGE:
                break
            first += _SCAN_PAGE
        who = "yourself" if user_id == self.admin.subject else "this member"
        raise Conflict(
            f"cannot {verb} {who}: they are the commune's last commune-admin; make another member commune-admin first",
            user_id=user_id,
        )

    async def _role(self, name: str) -> dict[str, Any]:
        if name not in self._role_reps:
            self._role_reps[name] = dict((await self.keycloak.request("GET", f"/roles/{name}")).json())
        return self._role_reps[name]

    async def _add_roles(self, user_id: str, names: list[str]) -> None:
        reps = [await self._role(n) for n in names]
        await self.keycloak.request("POST", f"/users/{user_id}/role-mappings/realm", json=reps)

    async def _remove_roles(self, user_id: str, names: list[str]) -> None:
        reps = [await self._role(n) for n in names]
        await self.keycloak.request("DELETE", f"/users/{user_id}/role-mappings/realm", json=reps)

    async def _audit(self, action: str, user_id: str, **details: Any) -> None:
        """The change in the tenant's chain, in the request's transaction (commits or rolls back with it)."""
        await record(
            self.session,
            self.admin.tenant,
            actor=self.admin.subject,
            action=action,
            target=f"user:{user_id}",
            details={"organization": self.admin.organization, **details},
        )


def _is_external(email: str, org: Organization) -> bool:
    return email.rsplit("@", 1)[1] not in org.domains


def _check_domain(email: str, org: Organization, *, allow_external: bool) -> None:
    if allow_external or not _is_external(email, org):
        return
    domains = ", ".join(org.domains) or "none yet"
    raise InvalidInput(
        f"the address is outside the commune's email domains ({domains}); set allow_external to invite it anyway",
        errors=[
            {
                "location": "body",
                "field": "body.email",
                "detail": f"domain {email.rsplit('@', 1)[1]!r} is not one of the organization's domains ({domains})",
            }
        ],
    )


__all__ = ["Invited", "MemberService"]
