"""A tenant's organization as the platform endpoints return it."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field


class OrganizationState(BaseModel):
    alias: str
    name: str
    tenant_id: UUID | None = Field(description="The tenant the organization stands for (attribute tenant_id)")
    enabled: bool = Field(description="False while the tenant is suspended: its members cannot log in")
    domains: list[str]
