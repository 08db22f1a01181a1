"""Request and response bodies of the data-sharing grants API."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from socle_core.schemas import label
from socle_tenancy.db.models import DataGrant, Dataset


class GrantStatus(StrEnum):
    live = "live"
    expired = "expired"
    revoked = "revoked"


class Side(StrEnum):
    """Which side of a grant the caller's tenant is on."""

    grantor = "grantor"
    grantee = "grantee"


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grantee: str = Field(
        min_length=1, max_length=64, description="The tenant to share with: its id, key (epci-<SIREN>) or INSEE code"
    )
    dataset: Dataset = Field(description="devices, or readings (shared by device)")
    resource_id: uuid.UUID | None = Field(
        default=None, description="The device whose rows are shared; absent shares the whole dataset"
    )
    reason: label(500, min_length=3) = Field(description="Why, as it will appear in both audit logs")
    expires_at: AwareDatetime = Field(description="When the grant ends, in the future, with its time zone")


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: label(500, min_length=3) | None = None


class GrantOut(BaseModel):
    id: uuid.UUID
    grantor_tenant_id: uuid.UUID
    grantee_tenant_id: uuid.UUID
    dataset: str
    resource_id: uuid.UUID | None
    reason: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_by: str | None
    status: GrantStatus

    @classmethod
    def of(cls, grant: DataGrant, now: dt.datetime | None = None) -> GrantOut:
        now = now or dt.datetime.now(dt.UTC)
        if grant.revoked_at is not None:
            status = GrantStatus.revoked
        elif grant.expires_at <= now:
            status = GrantStatus.expired
        else:
            status = GrantStatus.live
        return cls(
            id=grant.id,
            grantor_tenant_id=grant.grantor_tenant_id,
            grantee_tenant_id=grant.grantee_tenant_id,
            dataset=grant.dataset,
            resource_id=grant.resource_id,
            reason=grant.reason,
            created_by=grant.created_by,
            created_at=grant.created_at,
            expires_at=grant.expires_at,
            revoked_at=grant.revoked_at,
            revoked_by=grant.revoked_by,
            status=status,
        )


class GrantPage(BaseModel):
    items: list[GrantOut]
    total: int
    limit: int
    offset: int
