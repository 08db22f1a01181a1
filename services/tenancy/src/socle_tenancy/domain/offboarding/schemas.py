"""Request and response bodies of the offboarding API."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from socle_core.schemas import label
from socle_tenancy.domain.tenants.schemas import TenantOut


class OffboardingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: label(500, min_length=3) = Field(description="Why the tenant leaves, as recorded on it")


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: label(500, min_length=3)
    bundle_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Checksum of the verified export bundle (manifest bundle_sha256)"
    )


class IdentityExportOut(BaseModel):
    """The tenant's Keycloak organization as the export bundle keeps it."""

    tenant_id: uuid.UUID
    organization: dict[str, Any] | None = Field(description="The organization (domains, attributes), null if none")
    members: list[dict[str, Any]]


class CompletionOut(BaseModel):
    tenant: TenantOut
    keycloak_organization_deleted: bool = Field(description="False when it was already gone (a repeated call)")
    remaining_rows: dict[str, int] = Field(description="Rows of the tenant left in this service's tables: all 0")
