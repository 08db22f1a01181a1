"""ORM models of the console service; the schema itself is defined by the migrations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from socle_core.migrations import service_metadata

SCHEMA = "console"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class WebSession(Base):
    """A browser's server-side state: an agent's session, or a login still at Keycloak.

    ``id`` is the SHA-256 of the cookie value, so the table never holds a usable cookie. Not
    tenant-owned (a login starts before any tenant is known): the tenant lives in ``data``.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, default="session")
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    keycloak_sid: Mapped[str | None] = mapped_column(Text, default=None)
