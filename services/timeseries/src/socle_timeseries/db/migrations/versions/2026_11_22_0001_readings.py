"""Readings: one value of one metric of one device at one instant, owned by a tenant.

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
        "readings",
        "timeseries",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "device_id", "metric", "time", name="pk_readings"),
    )


def downgrade() -> None:
    op.drop_table("readings", schema="timeseries")
