"""What the platform knows about the caller."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel


class WhoAmI(BaseModel):
    subject: str
    username: str | None
    email: str | None
    client_id: str | None
    roles: list[str]
    tenant_id: UUID | None
    organization: str | None
    organizations: list[str]
