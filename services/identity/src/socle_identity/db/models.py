"""ORM models of the identity service; the schema itself is defined by the migrations."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from sqlalchemy import DateTime, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from socle_core.migrations import service_metadata

SCHEMA = "identity"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class ServiceAccount(Base):
    """A tenant's client-credentials client; ``id`` is also the Keycloak client's internal id."""

    __tablename__ = "service_accounts"

    tenant_id: Mapped[UUID] = mapped_column(nullable=False)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    access: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
