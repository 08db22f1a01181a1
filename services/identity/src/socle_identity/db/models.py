"""ORM models of the identity service; the schema itself is defined by the migrations."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from socle_core.migrations import service_metadata

SCHEMA = "identity"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)
