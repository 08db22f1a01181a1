"""The directory of metering accounts loses an entry when its account is deleted.

Offboarding deletes every tenant-owned row of a tenant in that tenant's context, the metering
account included; the directory (not tenant-owned: ids only) kept the id, so the accounts'
listing counted an account it could no longer show. A trigger on the account removes the
entry in the same transaction, whoever deletes the account.

Entries already orphaned are not cleaned up here: the accounts table forces RLS on its owner
too, so a migration cannot tell which accounts still exist. The listing skips them.

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


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION billing.forget_deleted_account() RETURNS trigger
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            DELETE FROM billing.metering_account_directory WHERE account_of = OLD.tenant_id;
            RETURN OLD;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER metering_accounts_forget_deleted AFTER DELETE ON billing.metering_accounts "
        "FOR EACH ROW EXECUTE FUNCTION billing.forget_deleted_account()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER metering_accounts_forget_deleted ON billing.metering_accounts")
    op.execute("DROP FUNCTION billing.forget_deleted_account()")
