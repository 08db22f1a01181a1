"""Members of a commune's organization as the API shows them, and what an admin may send."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from socle_core.schemas import label

#: The realm roles a commune admin hands out; every other role is managed elsewhere.
CommuneRole = Literal["commune-agent", "commune-admin"]
COMMUNE_ROLES: tuple[str, ...] = ("commune-admin", "commune-agent")

#: A pragmatic address check: one @, a dotted domain, no spaces (Keycloak verifies the mailbox).
EMAIL_PATTERN = r"^[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"


class Invitation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, description="The agent's work address")
    first_name: label(100, min_length=0) | None = None
    last_name: label(100, min_length=0) | None = None
    role: CommuneRole = Field(description="commune-agent or commune-admin")
    allow_external: bool = Field(
        default=False,
        description="Accept an address outside the organization's email domains (e.g. a contractor)",
    )


InvitationStatus = Literal["pending", "accepted", "expired", "replaced"]


class InvitationView(BaseModel):
    """An invitation as its commune sees it: the same shape whoever the address belongs to."""

    id: UUID
    email: str
    role: CommuneRole
    status: InvitationStatus = Field(
        description="pending until the person accepts through the link e-mailed to them (or it expires); "
        "accepted once they are a member; replaced by a later invitation of the same address"
    )
    created_at: dt.datetime
    expires_at: dt.datetime = Field(description="The link sent works until then, once")
    member_id: str | None = Field(description="The member's id once accepted, else null")


class InvitationPage(BaseModel):
    items: list[InvitationView]
    first: int
    max: int
    total: int
    next: str | None = Field(description="URL of the next page, or null on the last one")


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: CommuneRole = Field(description="commune-agent or commune-admin; the other commune role is removed")


class Member(BaseModel):
    id: str = Field(description="Keycloak user id, the subject of the member's tokens")
    username: str
    email: str | None
    first_name: str | None
    last_name: str | None
    enabled: bool
    roles: list[CommuneRole] = Field(description="The member's commune roles (realm roles, ADR 0004)")


class MemberPage(BaseModel):
    items: list[Member]
    first: int
    max: int
    total: int
    next: str | None = Field(description="URL of the next page, or null on the last one")
