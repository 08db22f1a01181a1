"""Tenant registry: the EPCI and its member communes.

Not tenant-owned: this table *defines* the tenants; only platform roles read it whole.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("siren", sa.String(9), nullable=True),
        sa.Column("insee_code", sa.String(5), nullable=True),
        sa.Column("status", sa.Text(), nullable=False, server_default="invited"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('epci', 'commune')", name="kind"),
        sa.CheckConstraint("status IN ('invited', 'active', 'suspended', 'offboarding', 'deleted')", name="status"),
        sa.UniqueConstraint("key"),
        schema="tenancy",
    )


def downgrade() -> None:
    op.drop_table("tenants", schema="tenancy")
