"""Run the console service's migrations as the schema owner: ``python -m socle_console.db.migrate``."""

from __future__ import annotations

from pathlib import Path

from socle_console.config import ConsoleSettings
from socle_console.db.models import SCHEMA
from socle_core.migrations import main

MIGRATIONS = Path(__file__).with_name("migrations")

if __name__ == "__main__":
    raise SystemExit(main(MIGRATIONS, SCHEMA, ConsoleSettings().effective_migration_url))  # type: ignore[call-arg]
