"""Alembic environment of the console service (shared body in socle_core.migrations)."""

from socle_console.db import models  # noqa: F401  (registers the models on the metadata)
from socle_console.db.models import Base
from socle_core.migrations import run_env

run_env(Base.metadata)
