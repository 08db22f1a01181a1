"""Where the audit feed stands in Keycloak's event stores, so an import never loses or repeats an event.

``keycloak_event_cursor`` holds, per stream (``events`` for user and client events,
``admin-events``), the time of the newest event imported. ``keycloak_imported_events`` holds
the ids of the events imported within the re-read window before that time: Keycloak may store
an event a little after a newer one, so each run reads again from a while before the cursor,
and the ids say which of those events are already in the audit log. Both are written in the
transaction that appends the audit entries. Platform metadata (event ids and times): no
``tenant_id``, the tenant of each event lives in the audit log only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "identity"
_STREAMS = "stream IN ('events', 'admin-events')"


def upgrade() -> None:
    op.create_table(
        "keycloak_event_cursor",
        sa.Column("stream", sa.Text(), primary_key=True),
        sa.Column("imported_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(_STREAMS, name="stream"),
        sa.CheckConstraint("imported_until_ms >= 0", name="imported_until_ms"),
        schema=SCHEMA,
    )
    op.create_table(
        "keycloak_imported_events",
        sa.Column("stream", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("event_time_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(_STREAMS, name="stream"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_keycloak_imported_events_stream_time",
        "keycloak_imported_events",
        ["stream", "event_time_ms"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("keycloak_imported_events", schema=SCHEMA)
    op.drop_table("keycloak_event_cursor", schema=SCHEMA)
