"""The directory of metering accounts gains an entry whenever an account row is written.

Opening an account wrote its directory entry in the service's code; a tenant restored from
its offboarding bundle (``socle-tenants import``) gets its account row back through the
rows of the bundle, and the platform roles' listing would never show it. A trigger, the
counterpart of ``metering_accounts_forget_deleted``, now writes the entry with the row,
whoever inserts it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION billing.list_inserted_account() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            INSERT INTO billing.metering_account_directory (account_of, opened_at)
                VALUES (NEW.tenant_id, NEW.opened_at) ON CONFLICT DO NOTHING;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER metering_accounts_list_inserted AFTER INSERT ON billing.metering_accounts "
        "FOR EACH ROW EXECUTE FUNCTION billing.list_inserted_account()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER metering_accounts_list_inserted ON billing.metering_accounts")
    op.execute("DROP FUNCTION billing.list_inserted_account()")
