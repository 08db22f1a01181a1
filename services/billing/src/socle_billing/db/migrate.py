"""Run the billing service's migrations as the schema owner: ``python -m socle_billing.db.migrate``."""

from __future__ import annotations

from pathlib import Path

from socle_billing.config import BillingSettings
from socle_billing.db.models import SCHEMA
from socle_core.migrations import main

MIGRATIONS = Path(__file__).with_name("migrations")

if __name__ == "__main__":
    raise SystemExit(main(MIGRATIONS, SCHEMA, BillingSettings().effective_migration_url))  # type: ignore[call-arg]
