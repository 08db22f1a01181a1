"""Devices another tenant shared by a data-sharing grant become readable to it (never writable).

A separate permissive ``FOR SELECT`` policy, OR-ed with ``tenant_isolation`` by PostgreSQL:
writes still need the row's own tenant. ``tenancy.shared_with_current_tenant`` (tenancy
migration 0004; the tenancy migrations run first) checks the grant; this service's roles may
call it as members of ``socle_grant_reader``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from socle_core.migrations import TENANT_POLICY

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        f"CREATE POLICY {TENANT_POLICY}_shared_read ON ingestion.devices FOR SELECT "
        "USING (tenancy.shared_with_current_tenant(tenant_id, 'devices', id))"
    )


def downgrade() -> None:
    op.execute(f"DROP POLICY {TENANT_POLICY}_shared_read ON ingestion.devices")
