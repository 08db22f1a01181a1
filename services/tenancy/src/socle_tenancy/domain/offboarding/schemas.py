"""Request and response bodies of the offboarding API."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from socle_core.schemas import label
from socle_tenancy.domain.tenants.schemas import EmailDomain, TenantOut


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


class ImportedTenantIn(BaseModel):
    """The registry row of a commune as its bundle keeps it (``registry/tenant.json``)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    kind: str = Field(description="commune: an EPCI is the platform itself and is never imported")
    key: str = Field(pattern=r"^commune-[0-9][0-9AB][0-9]{3}$")
    name: str = Field(min_length=1, max_length=200)
    siren: str | None = Field(default=None, pattern=r"^[0-9]{9}$")
    insee_code: str = Field(pattern=r"^[0-9][0-9AB][0-9]{3}$")
    population: int | None = Field(default=None, ge=0)
    population_year: int | None = None
    population_reference: str | None = None
    email_domains: list[EmailDomain] = Field(default_factory=list)


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The verified bundle's bundle_sha256")
    tenant: ImportedTenantIn


class ImportOut(BaseModel):
    tenant: TenantOut
    created: bool = Field(description="False when an interrupted import of the same bundle is resumed")


class ImportCompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    audit_entries: int = Field(ge=0, description="Entries of the bundle's audit chain, restored before this call")
    organization: dict[str, Any] | None = Field(
        description="The bundle's Keycloak organization (keycloak/organization.json)"
    )
    members: list[dict[str, Any]] = Field(description="The bundle's members: who they were, never their credentials")


class RestoredMemberOut(BaseModel):
    email: str
    user_id: str
    created: bool = Field(description="True: a new account without password, invited by e-mail to set one")
    roles: list[str]
    invitation_error: str | None = Field(description="Why the invitation e-mail could not be sent, if it could not")


class ImportCompletionOut(BaseModel):
    tenant: TenantOut
    organization_id: str
    members: list[RestoredMemberOut]
    skipped_members: list[str] = Field(description="Members of the bundle that could not be restored, and why")
