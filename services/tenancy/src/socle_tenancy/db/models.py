"""ORM models of the tenancy service; the schema itself is defined by the migrations."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, SmallInteger, String, Text, Uuid, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from socle_core.migrations import service_metadata

SCHEMA = "tenancy"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class TenantKind(StrEnum):
    epci = "epci"
    commune = "commune"


class TenantStatus(StrEnum):
    """invited → active → suspended → offboarding → deleted (suspended may come back).

    A commune that left may come back from its export bundle: deleted (or absent) →
    importing → active (``socle-tenants import``).
    """

    invited = "invited"
    active = "active"
    suspended = "suspended"
    offboarding = "offboarding"
    deleted = "deleted"
    importing = "importing"


class StepStatus(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


def _now_column() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Tenant(Base):
    """A commune or the EPCI itself; the registry row, not tenant-owned data."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text, unique=True)
    """The Keycloak organization alias: ``commune-<INSEE>`` or ``epci-<SIREN>``."""
    name: Mapped[str] = mapped_column(Text)
    siren: Mapped[str | None] = mapped_column(String(9))
    insee_code: Mapped[str | None] = mapped_column(String(5))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("tenants.id"))
    population: Mapped[int | None] = mapped_column(Integer)
    population_year: Mapped[int | None] = mapped_column(Integer)
    population_reference: Mapped[str | None] = mapped_column(Text)
    email_domains: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    first_admin_email: Mapped[str | None] = mapped_column(Text)
    keycloak_organization_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=TenantStatus.invited.value)
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[dt.datetime] = _now_column()
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    suspended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    offboarding_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _now_column()
    updated_at: Mapped[dt.datetime] = _now_column()


class OnboardingStep(Base):
    """One step of a tenant's onboarding workflow (tenant-owned: RLS on ``tenant_id``)."""

    __tablename__ = "onboarding_steps"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("tenants.id"), primary_key=True)
    step: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(Text, server_default=StepStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    last_error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = _now_column()


class Quota(Base):
    """A tenant's limits (tenant-owned: RLS on ``tenant_id``)."""

    __tablename__ = "quotas"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("tenants.id"), primary_key=True)
    max_devices: Mapped[int] = mapped_column(Integer)
    max_readings_per_day: Mapped[int] = mapped_column(BigInteger)
    storage_gb: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = _now_column()


class AuditEntry(Base):
    """One entry of a tenant's hash-chained audit log; appended by ``tenancy.append_audit`` only."""

    __tablename__ = "audit_entries"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditHead(Base):
    """The last sequence number and hash of a chain: deleting the newest entries shows.

    Under RLS on ``chain_id``: a chain's head is read in that chain's context, like its entries.
    """

    __tablename__ = "audit_heads"

    chain_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    """The tenant whose chain it is, or the platform's nil UUID."""
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Dataset(StrEnum):
    """What a data-sharing grant can share; readings are shared by device."""

    devices = "devices"
    readings = "readings"


class DataGrant(Base):
    """A grantor tenant lets a grantee tenant read a dataset (or one resource of it) until a date."""

    __tablename__ = "data_grants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    grantor_tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("tenants.id"))
    grantee_tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("tenants.id"))
    dataset: Mapped[str] = mapped_column(Text)
    resource_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    """A device id; null shares the whole dataset."""
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now_column()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(Text)
    revocation_reason: Mapped[str | None] = mapped_column(Text)
    """Why it was revoked, when the grantor said (recorded in both parties' audit chains)."""
