# ruff: noqa: S608  (every name and value in this DDL is a constant of this module)
"""The tenant directory: which tenants the registry holds, for the other services (ADR 0013).

Other services never read ``tenancy.tenants``. ``tenant_directory(id, key)`` (SECURITY
DEFINER, STABLE) answers the registry rows whose id is ``id`` or whose key is ``key``, with
their id, key and status only: billing checks that a metering account is opened for a
tenant that exists, under its own key, and the core checks that a token's organization
alias and tenant id name the same tenant. The group ``socle_grant_reader`` (every service's
roles) may execute it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from socle_core.provisioning import GRANT_READER

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "tenancy"
SIGNATURE = f"{SCHEMA}.tenant_directory(uuid, text)"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.tenant_directory(tenant uuid, tenant_key text)
        RETURNS TABLE (id uuid, key text, status text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
          SELECT t.id, t.key, t.status FROM {SCHEMA}.tenants t WHERE t.id = $1 OR t.key = $2 ORDER BY t.key
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {GRANT_READER}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
