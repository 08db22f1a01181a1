"""Readings of a device another tenant shared by a data-sharing grant become readable to it.

Readings are shared by device: a grant on the dataset ``readings`` names a device id (or
none, for all the grantor's readings). A separate permissive ``FOR SELECT`` policy, OR-ed
with ``tenant_isolation`` by PostgreSQL: writes still need the row's own tenant.
``tenancy.shared_with_current_tenant`` (tenancy migration 0004; the tenancy migrations run
first) checks the grant; this service's roles may call it as members of ``socle_grant_reader``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from socle_core.migrations import add_shared_read_policy, drop_shared_read_policy

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    add_shared_read_policy("readings", "timeseries", dataset="readings", resource_column="device_id")


def downgrade() -> None:
    drop_shared_read_policy("readings", "timeseries")
