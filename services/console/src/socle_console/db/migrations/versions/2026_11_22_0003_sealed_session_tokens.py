"""Session tokens are sealed with a key derived from the cookie: sessions holding clear tokens end.

The clear tokens cannot be sealed here (the cookie values are not stored anywhere), and must
not stay at rest: those sessions are deleted, their agents log in again. A check keeps the
token fields out of a session's clear data from now on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_CLEAR_TOKENS = "data::jsonb ?| ARRAY['access_token', 'refresh_token', 'id_token']"


def upgrade() -> None:
    op.execute(f"DELETE FROM console.web_sessions WHERE {_CLEAR_TOKENS}")  # noqa: S608 (a constant)
    op.create_check_constraint(
        op.f("ck_web_sessions_no_clear_tokens"), "web_sessions", f"NOT ({_CLEAR_TOKENS})", schema="console"
    )


def downgrade() -> None:
    # The sealed sessions cannot be read by the previous version: they end as well.
    op.drop_constraint(op.f("ck_web_sessions_no_clear_tokens"), "web_sessions", schema="console", type_="check")
    op.execute("DELETE FROM console.web_sessions WHERE kind = 'session'")
