"""Request and response bodies of the tenant registry."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from socle_core.schemas import label
from socle_tenancy.db.models import Tenant

_DOMAIN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
EmailDomain = Annotated[str, StringConstraints(pattern=_DOMAIN, to_lower=True, strip_whitespace=True, max_length=253)]


class EpciIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    siren: str = Field(min_length=9, max_length=11, description="SIREN of the EPCI à fiscalité propre, e.g. 243000296")


class TenantOut(BaseModel):
    id: uuid.UUID
    kind: str
    key: str = Field(description="Keycloak organization alias: commune-<INSEE> or epci-<SIREN>")
    name: str
    siren: str | None
    insee_code: str | None
    parent_id: uuid.UUID | None
    population: int | None
    population_year: int | None
    population_reference: str | None
    email_domains: list[str]
    keycloak_organization_id: str | None
    status: str
    status_reason: str | None
    status_changed_at: dt.datetime
    activated_at: dt.datetime | None
    suspended_at: dt.datetime | None
    offboarding_at: dt.datetime | None
    deleted_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls.model_validate(tenant, from_attributes=True)


class CandidateOut(BaseModel):
    """A member commune of the EPCI, pre-filled from the official reference."""

    insee_code: str
    siren: str
    name: str
    population: int | None
    population_year: int | None
    departement: str
    key: str
    tenant_id: uuid.UUID | None = Field(description="Set once the commune is a tenant")
    status: str | None = Field(description="The tenant's status, or null for a candidate not onboarded yet")


class EpciOut(BaseModel):
    tenant: TenantOut
    kind_label: str
    member_count: int
    reference: str = Field(description="Package and version of the reference data")
    candidates: list[CandidateOut]


class CandidatesOut(BaseModel):
    epci_siren: str
    candidates: list[CandidateOut]


class TenantPage(BaseModel):
    items: list[TenantOut]
    total: int
    limit: int
    offset: int


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: label(500, min_length=3) = Field(description="Why, as it will appear in the audit log")


class QuotasOut(BaseModel):
    tenant_id: uuid.UUID
    max_devices: int
    max_readings_per_day: int
    storage_gb: int
    updated_at: dt.datetime


class TenantPatchIn(BaseModel):
    """What may change on an onboarded tenant; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: label(200) | None = Field(default=None, description="Display name")
    email_domains: list[EmailDomain] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="The organisation's e-mail domains; replaces the list (Keycloak organization included)",
    )
