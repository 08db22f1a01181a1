"""ORM models of the identity service; the schema itself is defined by the migrations."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from sqlalchemy import BigInteger, DateTime, Text, func
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


class KeycloakEventCursor(Base):
    """Per Keycloak event stream, the time of the newest event the audit feed imported."""

    __tablename__ = "keycloak_event_cursor"

    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    imported_until_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KeycloakImportedEvent(Base):
    """An event already in the audit log, remembered while a run may read it again."""

    __tablename__ = "keycloak_imported_events"

    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_time_ms: Mapped[int] = mapped_column(BigInteger)


class Invitation(Base):
    """An invitation into a commune; the person becomes a member only once they accept (tenant-owned)."""

    __tablename__ = "invitations"

    tenant_id: Mapped[UUID] = mapped_column(nullable=False)
    id: Mapped[UUID] = mapped_column(primary_key=True)
    organization: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    invited_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class InvitationTenant(Base):
    """A tenant with pending invitations: where the acceptance job looks (platform metadata)."""

    __tablename__ = "invitation_tenants"

    tenant: Mapped[UUID] = mapped_column(primary_key=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
