"""Usage events: every metered unit of a tenant, recorded once (idempotency key).

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
        "usage_events",
        "billing",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(18, 6), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_usage_events_tenant_id_idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("usage_events", schema="billing")
