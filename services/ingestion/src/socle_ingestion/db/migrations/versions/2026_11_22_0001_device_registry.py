"""Device registry: each device belongs to exactly one tenant.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from socle_core.migrations import tenant_owned_table

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    tenant_owned_table(
        "devices",
        "ingestion",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "external_id", name="uq_devices_tenant_id_external_id"),
    )


def downgrade() -> None:
    op.drop_table("devices", schema="ingestion")
