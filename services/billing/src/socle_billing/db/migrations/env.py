"""Alembic environment of the billing service (shared body in socle_core.migrations)."""

from socle_billing.db import models  # noqa: F401  (registers the models on the metadata)
from socle_billing.db.models import Base
from socle_core.migrations import run_env

run_env(Base.metadata)
