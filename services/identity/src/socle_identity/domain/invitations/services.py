"""Giving the membership and the role of an invitation once the invited person accepted it.

An invitation (``socle_identity.domain.members``) makes nobody a member by itself. The person
accepts through the link e-mailed to their address:

- a new account: the link sets its password and verifies its address. Once its address is
  verified and no password remains to set, the account joins the commune with the role;
- an existing account: Keycloak's organization invitation adds the membership when its owner
  confirms. Once the account is a member, it gets the role, after the same checks as at
  invitation time (an account that has meanwhile joined another organization or gained a
  platform role gets no role and leaves the commune again).

An invitation still pending when its link expires is expired, and a new account whose owner
never set a password is deleted. Each outcome is recorded in the commune's chain, in the
transaction that settles the invitation, in the commune's own tenant context. The job looks
only at tenants listed in ``identity.invitation_tenants``; a tenant leaves that list once it
has no pending invitation left.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core.audit import Outcome, record
from socle_core.auth import system_tenant
from socle_core.db import tenant_session
from socle_identity.db.models import Invitation, InvitationTenant
from socle_identity.domain.invitations.schemas import InvitationReport
from socle_identity.domain.members.services import RealmRoles, withheld_reason
from socle_identity.keycloak import KeycloakAdminClient, Organization, Organizations

log = structlog.get_logger("socle.identity.invitations")


@dataclass
class _Settled:
    """One invitation's outcome, recorded once the Keycloak calls are done."""

    invitation: Invitation
    action: str
    actor: str
    target: str
    outcome: Outcome = "success"
    details: dict[str, Any] = field(default_factory=dict)


class InvitationSync:
    """Settles pending invitations; one run at a time in this process, rows locked across processes."""

    def __init__(self, keycloak: KeycloakAdminClient, maker: async_sessionmaker[AsyncSession]) -> None:
        self.keycloak = keycloak
        self.maker = maker
        self.organizations = Organizations(keycloak)
        self._lock = asyncio.Lock()

    async def run(self) -> InvitationReport:
        async with self._lock:
            async with tenant_session(self.maker, None) as session:
                listed = list(
                    (await session.execute(select(InvitationTenant.tenant, InvitationTenant.updated_at))).all()
                )
            report = InvitationReport(tenants=len(listed), accepted=0, expired=0, refused=0, pending=0)
            roles = RealmRoles(self.keycloak)
            organizations: dict[str, Organization | None] = {}
            for tenant_id, listed_at in listed:
                await self._settle_tenant(tenant_id, listed_at, roles, organizations, report)
        if report.accepted or report.expired or report.refused:
            log.info("invitations_settled", accepted=report.accepted, expired=report.expired, refused=report.refused)
        return report

    async def _settle_tenant(
        self,
        tenant_id: uuid.UUID,
        listed_at: dt.datetime,
        roles: RealmRoles,
        organizations: dict[str, Organization | None],
        report: InvitationReport,
    ) -> None:
        tenant = system_tenant(tenant_id, reason="identity: settle the commune's pending invitations")
        async with tenant_session(self.maker, tenant) as session:
            pending = list(
                await session.scalars(
                    select(Invitation)
                    .where(Invitation.tenant_id == tenant_id, Invitation.state == "pending")
                    .order_by(Invitation.created_at)
                    .with_for_update(skip_locked=True)
                )
            )
            now = dt.datetime.now(dt.UTC)
            settled: list[_Settled] = []
            for invitation in pending:
                if invitation.organization not in organizations:
                    organizations[invitation.organization] = await self.organizations.get(invitation.organization)
                outcome = await self._settle(invitation, organizations[invitation.organization], roles, now)
                if outcome is None:
                    report.pending += 1
                    continue
                settled.append(outcome)
            for outcome in settled:  # the chain's lock is taken last, after every Keycloak call
                invitation = outcome.invitation
                invitation.settled_at = now
                if invitation.state == "accepted":
                    report.accepted += 1
                elif outcome.outcome == "refused":
                    report.refused += 1
                else:
                    report.expired += 1
                await record(
                    session,
                    tenant,
                    actor=outcome.actor,
                    action=outcome.action,
                    target=outcome.target,
                    outcome=outcome.outcome,
                    details={
                        "organization": invitation.organization,
                        "invitation_id": str(invitation.id),
                        **outcome.details,
                    },
                )
            await session.flush()
            left = await session.scalar(
                select(func.count()).select_from(Invitation).where(Invitation.state == "pending")
            )
            if not left:  # a tenant listed again since this run read the list stays listed
                await session.execute(
                    delete(InvitationTenant).where(
                        InvitationTenant.tenant == tenant_id, InvitationTenant.updated_at <= listed_at
                    )
                )

    async def _settle(
        self, invitation: Invitation, organization: Organization | None, roles: RealmRoles, now: dt.datetime
    ) -> _Settled | None:
        """The invitation's outcome if it has one now, else None (still waiting)."""
        user = None
        if invitation.user_id is not None:
            response = await self.keycloak.request("GET", f"/users/{invitation.user_id}", expected=(404,))
            user = dict(response.json()) if response.status_code == 200 else None
        if organization is not None and user is not None:
            if invitation.kind == "new_account" and _activated(user):
                await self.keycloak.request(
                    "POST", f"/organizations/{organization.id}/members", json=str(user["id"]), expected=(409,)
                )
                return await self._joined(invitation, user, roles)
            if invitation.kind == "existing_account" and await self._is_member(organization, str(user["id"])):
                reason = await withheld_reason(self.keycloak, user, organization.id)
                if reason is None:
                    return await self._joined(invitation, user, roles)
                await self.keycloak.request(
                    "DELETE", f"/organizations/{organization.id}/members/{user['id']}", expected=(404,)
                )
                invitation.state = "expired"
                return _Settled(
                    invitation,
                    "member.invitation_refused",
                    "socle-identity",
                    f"invitation:{invitation.id}",
                    outcome="refused",
                    details={"reason": reason, "role": invitation.role},
                )
        gone = organization is None or (invitation.user_id is not None and user is None)
        if not gone and invitation.expires_at > now:
            return None
        if invitation.kind == "new_account" and user is not None and not _activated(user):
            await self.keycloak.request("DELETE", f"/users/{user['id']}", expected=(404,))  # made for this invitation
        invitation.state = "expired"
        return _Settled(
            invitation,
            "member.invitation_expired",
            "socle-identity",
            f"invitation:{invitation.id}",
            details={"role": invitation.role},
        )

    async def _joined(self, invitation: Invitation, user: dict[str, Any], roles: RealmRoles) -> _Settled:
        user_id = str(user["id"])
        await roles.give(user_id, invitation.role)
        invitation.state = "accepted"
        log.info("invitation_accepted", invitation_id=str(invitation.id), user_id=user_id, role=invitation.role)
        return _Settled(
            invitation,
            "member.joined",
            user_id,
            f"user:{user_id}",
            details={"role": invitation.role, "invited_by": invitation.invited_by},
        )

    async def _is_member(self, organization: Organization, user_id: str) -> bool:
        response = await self.keycloak.request(
            "GET", f"/organizations/{organization.id}/members/{user_id}", expected=(404,)
        )
        return response.status_code == 200


def _activated(user: dict[str, Any]) -> bool:
    """The owner used the link: address verified, password set."""
    return bool(user.get("emailVerified")) and "UPDATE_PASSWORD" not in (user.get("requiredActions") or [])
