"""``/v1/members``: who belongs to the caller's commune, with which role (commune admins)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.auth import Principal
from socle_core.errors import Forbidden
from socle_core.inputs import MAX_INT32
from socle_identity.deps import TenantAdmin, provide_tenant_admin
from socle_identity.domain.members.schemas import (
    Invitation,
    InvitationPage,
    InvitationView,
    Member,
    MemberPage,
    RoleChange,
)
from socle_identity.domain.members.services import MemberService
from socle_identity.keycloak import KeycloakAdminClient

#: Roles that may see their own tenant's members (changes stay with commune admins).
MEMBER_READER_ROLES = ("commune-admin", "epci-admin")


def provide_member_reader(request: Request[Principal, Any, Any]) -> TenantAdmin:
    """Reading the member list: an admin of the token's one tenant."""
    principal = request.user
    tenant = principal.require_tenant()
    principal.require_role(*MEMBER_READER_ROLES)
    if principal.organization is None:
        raise Forbidden("ce jeton désigne une collectivité sans son organisation")
    return TenantAdmin(tenant, principal.organization, principal.subject)


def provide_members(
    db_session: NamedDependency[AsyncSession],
    tenant_admin: NamedDependency[TenantAdmin],
    keycloak: NamedDependency[KeycloakAdminClient],
) -> MemberService:
    return MemberService(db_session, tenant_admin, keycloak)


def provide_member_listing(
    db_session: NamedDependency[AsyncSession],
    member_reader: NamedDependency[TenantAdmin],
    keycloak: NamedDependency[KeycloakAdminClient],
) -> MemberService:
    return MemberService(db_session, member_reader, keycloak)


async def provide_member(user_id: FromPath[UUID], members: NamedDependency[MemberService]) -> Member:
    """The member the path names, in the caller's organization (404 otherwise, before the body is read)."""
    return await members.require(str(user_id))


class MemberController(Controller):
    path = "/v1/members"
    tags = ["members"]
    dependencies = {
        "tenant_admin": Provide(provide_tenant_admin, sync_to_thread=False),
        "member_reader": Provide(provide_member_reader, sync_to_thread=False),
        "members": Provide(provide_members, sync_to_thread=False),
        "member_listing": Provide(provide_member_listing, sync_to_thread=False),
        "member": Provide(provide_member),
    }

    @get("/", summary="The commune's members and their commune roles, a page at a time")
    async def list_members(
        self,
        request: Request[Principal, Any, Any],
        member_listing: NamedDependency[MemberService],
        first: Annotated[int, QueryParameter(ge=0, le=MAX_INT32, description="Index of the first member")] = 0,
        max_: Annotated[int, QueryParameter(name="max", ge=1, le=100, description="Page size (1 to 100)")] = 50,
    ) -> MemberPage:
        items, total = await member_listing.page(first, max_)
        following = first + len(items)
        next_link = None
        if items and following < total:
            next_link = f"{request.url.path}?{urlencode({'first': following, 'max': max_})}"
        return MemberPage(items=items, first=first, max=max_, total=total, next=next_link)

    @post(
        "/invitations",
        status_code=202,
        summary="Invite someone into the commune with a role; they become a member once they accept the e-mailed link",
        description="The answer is the same whoever the address belongs to (202 and a pending invitation): an "
        "existing account is never made a member without its owner's acceptance, and another commune's or the "
        "platform's accounts are never touched.",
    )
    async def invite(self, data: JSONBody[Invitation], members: NamedDependency[MemberService]) -> InvitationView:
        return await members.invite(data)

    @get("/invitations", summary="The commune's invitations and where they stand, newest first, a page at a time")
    async def list_invitations(
        self,
        request: Request[Principal, Any, Any],
        member_listing: NamedDependency[MemberService],
        first: Annotated[int, QueryParameter(ge=0, le=MAX_INT32, description="Index of the first invitation")] = 0,
        max_: Annotated[int, QueryParameter(name="max", ge=1, le=100, description="Page size (1 to 100)")] = 50,
    ) -> InvitationPage:
        items, total = await member_listing.invitations(first, max_)
        following = first + len(items)
        next_link = None
        if items and following < total:
            next_link = f"{request.url.path}?{urlencode({'first': following, 'max': max_})}"
        return InvitationPage(items=items, first=first, max=max_, total=total, next=next_link)

    @put("/{user_id:uuid}/role", summary="Give a member the other commune role")
    async def change_role(
        self,
        user_id: FromPath[UUID],
        member: NamedDependency[Member],
        data: JSONBody[RoleChange],
        members: NamedDependency[MemberService],
    ) -> Member:
        return await members.change_role(member, data.role)

    @delete("/{user_id:uuid}", summary="Remove a member from the commune")
    async def remove(
        self, user_id: FromPath[UUID], member: NamedDependency[Member], members: NamedDependency[MemberService]
    ) -> None:
        await members.remove(member)
