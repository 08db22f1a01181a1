"""Run the identity service's migrations as the schema owner: ``python -m socle_identity.db.migrate``."""

from __future__ import annotations

from pathlib import Path

from socle_core.migrations import main
from socle_identity.config import IdentitySettings
from socle_identity.db.models import SCHEMA

MIGRATIONS = Path(__file__).with_name("migrations")

if __name__ == "__main__":
    raise SystemExit(main(MIGRATIONS, SCHEMA, IdentitySettings().effective_migration_url))  # type: ignore[call-arg]
