"""Invitations into a commune, which make someone a member only once they accept.

``invitations`` (tenant-owned: RLS enabled and forced) holds each invitation a commune admin
sent: the address, the role, what was done for it (``kind``: a new account created and e-mailed,
an existing account sent Keycloak's organization invitation, an address that is already a
member, or an account that is never touched, ``withheld``) and where it stands (``state``).
At most one invitation per address and commune is pending.

``invitation_tenants`` is platform metadata about tenants, not a tenant's data (ids and
times, no address): the tenants that have pending invitations, so the invitation job opens
only their contexts. Its column is ``tenant``, not ``tenant_id``: no row belongs to a tenant,
as with the event cursor. A row is written with each pending invitation and removed once
none is left.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from socle_core.migrations import tenant_owned_table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "identity"


def upgrade() -> None:
    tenant_owned_table(
        "invitations",
        SCHEMA,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("organization", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("invited_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('commune-agent', 'commune-admin')", name="role"),
        sa.CheckConstraint("kind IN ('new_account', 'existing_account', 'member', 'withheld')", name="kind"),
        sa.CheckConstraint("state IN ('pending', 'accepted', 'expired', 'replaced')", name="state"),
        sa.CheckConstraint("email = lower(email)", name="email_lower"),
        sa.CheckConstraint("kind = 'withheld' OR user_id IS NOT NULL", name="user_id"),
    )
    op.create_index(
        "uq_invitations_pending_email",
        "invitations",
        ["tenant_id", "email"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_invitations_tenant_created", "invitations", ["tenant_id", "created_at"], schema=SCHEMA)
    op.create_table(
        "invitation_tenants",
        sa.Column("tenant", sa.Uuid(), primary_key=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("invitation_tenants", schema=SCHEMA)
    op.drop_table("invitations", schema=SCHEMA)
