"""Run the timeseries service's migrations as the schema owner: ``python -m socle_timeseries.db.migrate``."""

from __future__ import annotations

from pathlib import Path

from socle_core.migrations import main
from socle_timeseries.config import TimeseriesSettings
from socle_timeseries.db.models import SCHEMA

MIGRATIONS = Path(__file__).with_name("migrations")

if __name__ == "__main__":
    raise SystemExit(main(MIGRATIONS, SCHEMA, TimeseriesSettings().effective_migration_url))  # type: ignore[call-arg]
