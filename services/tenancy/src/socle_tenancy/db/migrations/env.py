"""Alembic environment of the tenancy service (shared body in socle_core.migrations)."""

from socle_core.migrations import run_env
from socle_tenancy.db import models  # noqa: F401  (registers the models on the metadata)
from socle_tenancy.db.models import Base

run_env(Base.metadata)
