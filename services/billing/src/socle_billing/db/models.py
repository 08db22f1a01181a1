"""ORM models of the billing service; the schema itself is defined by the migrations."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from socle_core.migrations import service_metadata

SCHEMA = "billing"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)
