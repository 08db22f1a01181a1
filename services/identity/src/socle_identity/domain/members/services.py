"""Members of one commune's Keycloak organization: invitation, role, removal.

Keycloak holds the membership and the roles; this service only lets an admin act inside
their own organization. A user who is not a member of it does not exist for the caller
(404), whoever they are in the realm. Roles are realm roles, so they apply in every
organization a user belongs to (ADR 0004): a commune may not change the role of a member it
shares with another commune, since that would change their rights there too.

An invitation never makes anyone a member by itself (ADR 0010): the person accepts through
a link e-mailed to their address, and ``socle_identity.domain.invitations`` gives the
membership and the role once they have. An unknown address gets a new account, without
membership or role, and Keycloak's link to set a password and verify the address
(``execute-actions-email``, single use, valid ``actionTokenGeneratedByAdminLifespan``). An
existing account with a verified address, in no organization and holding no platform role
gets Keycloak's organization invitation (``invite-existing-user``). Any other account
(another commune's staff, the operator, the auditor, an unverified address) is never
touched: nothing is sent, and the refusal is recorded in the inviting commune's chain. The
answer is the same in every case (202 and a pending invitation, never the account's
profile), so an invitation tells the admin nothing about the addresses of the realm. Every
change is recorded in the tenant's audit chain in the request's transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.audit import Outcome, record
from socle_core.errors import Conflict, InvalidInput, NotFound
from socle_core.keycloak_admin import keycloak_problems, location_id
from socle_identity.db.models import Invitation as InvitationRow
from socle_identity.db.models import InvitationTenant
from socle_identity.deps import TenantAdmin
from socle_identity.domain.members.schemas import COMMUNE_ROLES, Invitation, InvitationView, Member
from socle_identity.keycloak import KeycloakAdminClient, Organization, Organizations

log = structlog.get_logger("socle.identity.members")

#: Members read per Keycloak call when scanning a whole organization.
_SCAN_PAGE = 100
#: What the e-mail asks a new account to do. UPDATE_PASSWORD is a one-time action: Keycloak
#: records the link as used once the actions are done, and refuses it after that.
NEW_ACCOUNT_ACTIONS = ["UPDATE_PASSWORD", "VERIFY_EMAIL"]
#: Realm roles an ordinary account may hold (the realm's defaults and the commune roles); an
#: account with any other one (operator, auditor, epci-admin, partner, device) is platform staff.
ORDINARY_ROLES = frozenset(
    {"default-roles-socle", "offline_access", "uma_authorization", "otp-required", *COMMUNE_ROLES}
)


async def withheld_reason(keycloak: KeycloakAdminClient, user: dict[str, Any], organization_id: str) -> str | None:
    """Why an invitation must not touch this account, or None when it may be invited.

    Only a person's own, verified address may receive the link that makes them a member, and
    nobody else's staff may be enrolled: the account must be enabled, a person's (not a service
    account's), with a verified address, in no other organization, and with ordinary roles only.
    """
    user_id = str(user["id"])
    if user.get("serviceAccountClientLink") or str(user.get("username", "")).startswith("service-account-"):
        return "service_account"
    if not user.get("enabled", True):
        return "disabled"
    if not user.get("emailVerified"):
        return "email_not_verified"
    memberships = (
        await keycloak.request(
            "GET", f"/organizations/members/{user_id}/organizations", params={"briefRepresentation": "true"}
        )
    ).json()
    if any(m.get("id") != organization_id for m in memberships):
        return "other_organization"
    roles = {
        str(r.get("name"))
        for r in (await keycloak.request("GET", f"/users/{user_id}/role-mappings/realm/composite")).json()
    }
    if roles - ORDINARY_ROLES:
        return "platform_role"
    return None


class RealmRoles:
    """The commune roles of accounts, each role's representation read once."""

    def __init__(self, keycloak: KeycloakAdminClient) -> None:
        self.keycloak = keycloak
        self._reps: dict[str, dict[str, Any]] = {}

    async def _role(self, name: str) -> dict[str, Any]:
        if name not in self._reps:
            self._reps[name] = dict((await self.keycloak.request("GET", f"/roles/{name}")).json())
        return self._reps[name]

    async def add(self, user_id: str, names: list[str]) -> None:
        reps = [await self._role(n) for n in names]
        await self.keycloak.request("POST", f"/users/{user_id}/role-mappings/realm", json=reps)

    async def remove(self, user_id: str, names: list[str]) -> None:
        reps = [await self._role(n) for n in names]
        await self.keycloak.request("DELETE", f"/users/{user_id}/role-mappings/realm", json=reps)

    async def give(self, user_id: str, role: str) -> None:
        """Exactly this commune role (the other one removed)."""
        await self.add(user_id, [role])
        await self.remove(user_id, [r for r in COMMUNE_ROLES if r != role])


def invitation_view(row: InvitationRow, now: dt.datetime | None = None) -> InvitationView:
    """What the commune sees; a withheld invitation reads like any unanswered one."""
    status = row.state
    if status == "pending" and row.expires_at <= (now or dt.datetime.now(dt.UTC)):
        status = "expired"
    return InvitationView(
        id=row.id,
        email=row.email,
        role=row.role,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        created_at=row.created_at,
        expires_at=row.expires_at,
        member_id=row.user_id if status == "accepted" else None,
    )


class MemberService:
    def __init__(self, session: AsyncSession, admin: TenantAdmin, keycloak: KeycloakAdminClient) -> None:
        self.session = session
        self.admin = admin
        self.keycloak = keycloak
        self.organizations = Organizations(keycloak)
        self.roles = RealmRoles(keycloak)
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

    async def invite(self, invitation: Invitation) -> InvitationView:
        """Send the invitation its address calls for; the answer never says which (see the module)."""
        email = invitation.email.lower()
        with keycloak_problems():
            org = await self._organization()
            _check_domain(email, org, allow_external=invitation.allow_external)
            lifespan = int((await self.keycloak.request("GET", "")).json()["actionTokenGeneratedByAdminLifespan"])
            previous = await self._replace_pending(email)
            user = await self._user_by_email(email)
            reason: str | None = None
            if user is None:
                user = await self._create_account(invitation, email, lifespan)
                kind = "new_account"
            elif await self._member_rep(org, str(user["id"])) is not None:
                kind = "member"
            elif previous is not None and previous.kind == "new_account" and previous.user_id == str(user["id"]):
                await self._send_account_link(str(user["id"]), lifespan)  # the account this commune created
                kind = "new_account"
            elif (reason := await withheld_reason(self.keycloak, user, org.id)) is None:
                await self.keycloak.request(
                    "POST", f"/organizations/{org.id}/members/invite-existing-user", data={"id": str(user["id"])}
                )
                kind = "existing_account"
            else:
                kind = "withheld"
        now = dt.datetime.now(dt.UTC)
        row = InvitationRow(
            tenant_id=self.admin.tenant.uuid,
            id=uuid.uuid4(),
            organization=self.admin.organization,
            email=email,
            role=invitation.role,
            kind=kind,
            state="accepted" if kind == "member" else "pending",
            user_id=None if kind == "withheld" else str(user["id"]),
            invited_by=self.admin.subject,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=lifespan),
            settled_at=now if kind == "member" else None,
        )
        self.session.add(row)
        await self.session.flush()
        if row.state == "pending":
            await self.session.execute(
                insert(InvitationTenant)
                .values(tenant=row.tenant_id)
                .on_conflict_do_update(index_elements=["tenant"], set_={"updated_at": func.clock_timestamp()})
            )
        details: dict[str, Any] = {
            "invitation_id": str(row.id),
            "role": invitation.role,
            "external": _is_external(email, org),
        }
        if kind == "withheld":
            # Nothing of the account goes in: the commune's admins read this chain.
            await self._audit(
                "member.invitation_refused", f"invitation:{row.id}", outcome="refused", reason=reason, **details
            )
            log.warning(
                "member_invitation_withheld",
                invitation_id=str(row.id),
                user_id=str(user["id"]),
                reason=reason,
                by=self.admin.subject,
            )
        else:
            await self._audit("member.invited", f"invitation:{row.id}", **details)
            log.info(
                "member_invited", invitation_id=str(row.id), kind=kind, role=invitation.role, by=self.admin.subject
            )
        return invitation_view(row, now)

    async def invitations(self, first: int, max_: int) -> tuple[list[InvitationView], int]:
        """The commune's invitations, newest first."""
        where = InvitationRow.tenant_id == self.admin.tenant.uuid
        total = int(await self.session.scalar(select(func.count()).select_from(InvitationRow).where(where)) or 0)
        rows = await self.session.scalars(
            select(InvitationRow)
            .where(where)
            .order_by(InvitationRow.created_at.desc(), InvitationRow.id)
            .offset(first)
            .limit(max_)
        )
        now = dt.datetime.now(dt.UTC)
        return [invitation_view(r, now) for r in rows], total

    async def _replace_pending(self, email: str) -> InvitationRow | None:
        """A pending invitation of the same address is replaced by the new one."""
        previous = await self.session.scalar(
            select(InvitationRow)
            .where(
                InvitationRow.tenant_id == self.admin.tenant.uuid,
                InvitationRow.email == email,
                InvitationRow.state == "pending",
            )
            .with_for_update()
        )
        if previous is not None:
            previous.state, previous.settled_at = "replaced", dt.datetime.now(dt.UTC)
            await self.session.flush()
        return previous

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
                await self._refuse_last_admin(org, user_id, "rétrograder")
            await self.roles.give(user_id, role)
            member = await self._member(await self._require_member(org, user_id))
        await self._audit("member.role_changed", f"user:{user_id}", previous=current.roles, role=role)
        log.info("member_role_changed", user_id=user_id, role=role, by=self.admin.subject)
        return member

    async def remove(self, current: Member) -> None:
        user_id = current.id
        with keycloak_problems():
            org = await self._organization()
            await self._lock_admins(org)
            current = await self._member(await self._require_member(org, user_id))  # as of the lock
            if "commune-admin" in current.roles:
                await self._refuse_last_admin(org, user_id, "retirer")
            await self.organizations.remove_member(self.admin.organization, user_id)
            elsewhere = await self._other_organizations(user_id, org)
            if not elsewhere:  # their commune rights ended with their last commune
                await self.roles.remove(user_id, list(COMMUNE_ROLES))
                await self.keycloak.request("POST", f"/users/{user_id}/logout")
        await self._audit("member.removed", f"user:{user_id}", roles=current.roles, roles_kept=bool(elsewhere))
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
            raise NotFound("aucun membre de votre commune avec cet identifiant", user_id=user_id)
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

    async def _create_account(self, invitation: Invitation, email: str, lifespan: int) -> dict[str, Any]:
        """A new account, in no organization and with no role until its owner accepts through the e-mail."""
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
                "requiredActions": NEW_ACCOUNT_ACTIONS,
            },
        )
        user_id = location_id(response)
        try:
            await self._send_account_link(user_id, lifespan)
        except BaseException:  # no email, no account: the admin can simply try again
            await self.keycloak.request("DELETE", f"/users/{user_id}", expected=(404,))
            raise
        return dict((await self.keycloak.request("GET", f"/users/{user_id}")).json())

    async def _send_account_link(self, user_id: str, lifespan: int) -> None:
        await self.keycloak.request(
            "PUT", f"/users/{user_id}/execute-actions-email", params={"lifespan": lifespan}, json=NEW_ACCOUNT_ACTIONS
        )

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
            "cette personne appartient aussi à une autre commune, et un rôle vaut dans toutes ses communes : "
            f"demandez à l'EPCI de le changer en {wanted!r} pour toutes",
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
        what = f"vous {verb}" if user_id == self.admin.subject else f"{verb} ce membre"
        raise Conflict(
            f"impossible de {what} : c'est le dernier commune-admin de la commune ; "
            "nommez d'abord un autre membre commune-admin",
            user_id=user_id,
        )

    async def _audit(self, action: str, target: str, *, outcome: Outcome = "success", **details: Any) -> None:
        """The change in the tenant's chain, in the request's transaction (commits or rolls back with it)."""
        await record(
            self.session,
            self.admin.tenant,
            actor=self.admin.subject,
            action=action,
            target=target,
            outcome=outcome,
            details={"organization": self.admin.organization, **details},
        )


def _is_external(email: str, org: Organization) -> bool:
    return email.rsplit("@", 1)[1] not in org.domains


def _check_domain(email: str, org: Organization, *, allow_external: bool) -> None:
    if allow_external or not _is_external(email, org):
        return
    domains = ", ".join(org.domains) or "aucun pour l'instant"
    raise InvalidInput(
        f"l'adresse est hors des domaines de messagerie de la commune ({domains}) : "
        "indiquez allow_external pour l'inviter malgré tout",
        errors=[
            {
                "location": "body",
                "field": "body.email",
                "detail": f"le domaine {email.rsplit('@', 1)[1]!r} n'est pas un des domaines de l'organisation "
                f"({domains})",
            }
        ],
    )


__all__ = ["MemberService", "RealmRoles", "invitation_view", "withheld_reason"]
