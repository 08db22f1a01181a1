"""Web sessions know their kind, user and Keycloak session (for back-channel logout).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "web_sessions", sa.Column("kind", sa.Text(), nullable=False, server_default="session"), schema="console"
    )
    op.create_check_constraint(
        op.f("ck_web_sessions_kind"), "web_sessions", "kind IN ('session', 'login')", schema="console"
    )
    op.add_column("web_sessions", sa.Column("subject", sa.Text(), nullable=True), schema="console")
    op.add_column("web_sessions", sa.Column("keycloak_sid", sa.Text(), nullable=True), schema="console")
    op.create_index("ix_web_sessions_keycloak_sid", "web_sessions", ["keycloak_sid"], schema="console")
    op.create_index("ix_web_sessions_subject", "web_sessions", ["subject"], schema="console")
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"], schema="console")


def downgrade() -> None:
    op.drop_index("ix_web_sessions_expires_at", "web_sessions", schema="console")
    op.drop_index("ix_web_sessions_subject", "web_sessions", schema="console")
    op.drop_index("ix_web_sessions_keycloak_sid", "web_sessions", schema="console")
    op.drop_column("web_sessions", "keycloak_sid", schema="console")
    op.drop_column("web_sessions", "subject", schema="console")
    op.drop_constraint(op.f("ck_web_sessions_kind"), "web_sessions", schema="console", type_="check")
    op.drop_column("web_sessions", "kind", schema="console")
