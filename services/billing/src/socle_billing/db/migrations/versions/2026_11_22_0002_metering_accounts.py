"""Metering accounts: one per tenant, opened by onboarding; and the directory of who has one.

``metering_accounts`` is tenant-owned (``tenant_owned_table``: RLS enabled, forced, policy).
``metering_account_directory`` lists only the ids of the tenants that have an account, so
that platform roles can page over accounts and read each in its tenant's context.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from socle_core.migrations import tenant_owned_table

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    tenant_owned_table(
        "metering_accounts",
        "billing",
        sa.Column("tenant_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="open"),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("opened_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_metering_accounts"),
        sa.UniqueConstraint("tenant_key", name="uq_metering_accounts_tenant_key"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_metering_accounts_status"),
        sa.CheckConstraint(
            "(kind = 'commune' AND tenant_key ~ '^commune-[0-9][0-9AB][0-9]{3}$') "
            "OR (kind = 'epci' AND tenant_key ~ '^epci-[0-9]{9}$')",
            name="ck_metering_accounts_kind_key",
        ),
    )
    op.create_table(
        "metering_account_directory",
        sa.Column("account_of", sa.Uuid(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("account_of", name="pk_metering_account_directory"),
        schema="billing",
    )


def downgrade() -> None:
    op.drop_table("metering_account_directory", schema="billing")
    op.drop_table("metering_accounts", schema="billing")
