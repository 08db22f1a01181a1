"""Run the ingestion service's migrations as the schema owner: ``python -m socle_ingestion.db.migrate``."""

from __future__ import annotations

from pathlib import Path

from socle_core.migrations import main
from socle_ingestion.config import IngestionSettings
from socle_ingestion.db.models import SCHEMA

MIGRATIONS = Path(__file__).with_name("migrations")

if __name__ == "__main__":
    raise SystemExit(main(MIGRATIONS, SCHEMA, IngestionSettings().effective_migration_url))  # type: ignore[call-arg]
