"""ORM models of the billing service; the schema itself is defined by the migrations."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import DateTime, Text, Uuid, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from socle_core.migrations import service_metadata

SCHEMA = "billing"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class AccountStatus(StrEnum):
    open = "open"
    closed = "closed"


class MeteringAccount(Base):
    """The account a tenant's usage is metered on (tenant-owned: RLS on ``tenant_id``)."""

    __tablename__ = "metering_accounts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_key: Mapped[str] = mapped_column(Text, unique=True)
    """The tenant's organization alias: ``commune-<INSEE>`` or ``epci-<SIREN>``."""
    kind: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=AccountStatus.open.value)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    opened_by: Mapped[str] = mapped_column(Text)


class AccountDirectory(Base):
    """Which tenants have a metering account: ids only, so platform roles can page over them.

    Not tenant-owned (like tenancy's registry it names tenants, it holds nothing of theirs):
    the accounts themselves are then read one by one in each tenant's context.
    """

    __tablename__ = "metering_account_directory"

    account_of: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
